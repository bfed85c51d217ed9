"""Training-split augmentation on TensorFlow ops: speed, rooms, microphones, gain, noise,
time shift, SpecAugment.

Every random draw is a stateless op seeded from the data (one seed per batch, from
``tf.data.Dataset.random``), never a number drawn once when ``map`` traces the function:
each clip gets its own shift, noise and masks, different every epoch and the same for
the same ``--seed``.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import tensorflow as tf

from kws.config import FeatureConfig
from kws.errors import InputError


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """What happens to training clips; validation and test clips are never augmented.

    Args:
        gain_db: Each clip's level changes by a random gain of up to this many decibels
            either way, as speakers and microphones differ; 0 turns it off.
        time_shift_ms: Clips move earlier or later by up to this many milliseconds, in
            whole 10 ms frames (the gap is silence); 0 turns it off.
        background_frequency: Share of clips that get background noise mixed in, 0 to 1.
        background_volume: Noise is scaled by a volume drawn up to this (1 = as recorded).
        time_masks: SpecAugment masks across time per clip.
        time_mask_frames: Each time mask covers up to this many frames (10 ms each).
        frequency_masks: SpecAugment masks across frequency per clip.
        frequency_mask_bins: Each frequency mask covers up to this many mel bins.
        speed_change: Clips play faster or slower by up to this share (0.1: 0.9 to 1.1
            times), which moves pitch and tempo together; 0 turns it off.
        room_frequency: Share of clips heard through a simulated room (``kws.data.rooms``,
            reverberation time 0.1 to 0.8 s), 0 to 1.
        microphone_frequency: Share of clips heard through a random microphone: a low cut
            at 50 to 400 Hz, a high cut at 3 to 8 kHz and three peaks or dips of up to 6 dB,
            0 to 1.
        noise_frequency: Share of clips mixed with noise made on the fly (from white to
            brown, low rumble or mains hum: ``coloured_noise_bank``), 0 to 1.
        noise_snr_min_db: Lowest signal-to-noise ratio of that noise, in dB.
        noise_snr_max_db: Highest signal-to-noise ratio of that noise, in dB.
        mixup_alpha: Mixup (``kws.mixup``): each clip's features mixed with another clip's,
            its target by the same shares, drawn from Beta(alpha, alpha); 0 turns it off.
    """

    gain_db: float = 10.0
    time_shift_ms: float = 100.0
    background_frequency: float = 0.8
    background_volume: float = 0.1
    time_masks: int = 2
    time_mask_frames: int = 10
    frequency_masks: int = 2
    frequency_mask_bins: int = 5
    speed_change: float = 0.0
    room_frequency: float = 0.0
    microphone_frequency: float = 0.0
    noise_frequency: float = 0.0
    noise_snr_min_db: float = 0.0
    noise_snr_max_db: float = 30.0
    mixup_alpha: float = 0.0

    def __post_init__(self) -> None:
        for name in ("gain_db", "time_shift_ms", "background_volume", "time_masks",
                     "time_mask_frames", "frequency_masks", "frequency_mask_bins",
                     "mixup_alpha"):
            if getattr(self, name) < 0:
                raise InputError(f"--{name} must not be negative, got {getattr(self, name)!r}")
        for name in ("background_frequency", "room_frequency", "microphone_frequency",
                     "noise_frequency"):
            if not 0 <= getattr(self, name) <= 1:
                raise InputError(f"--{name} must be between 0 and 1, got "
                                 f"{getattr(self, name)!r}")
        if not 0 <= self.speed_change < 1:
            raise InputError(f"--speed_change must be in [0, 1), got {self.speed_change!r}")
        if self.noise_snr_min_db > self.noise_snr_max_db:
            raise InputError(f"--noise_snr_min_db={self.noise_snr_min_db!r} is above "
                             f"--noise_snr_max_db={self.noise_snr_max_db!r}")

    @property
    def active(self) -> bool:
        return self != NO_AUGMENTATION


NO_AUGMENTATION = AugmentConfig(0.0, 0.0, 0.0, 0.0, 0, 0, 0, 0)
# What synthetic speech lacks most against people: rooms, microphones, noise, tempo, and
# the spread of their levels (a gain of up to 30 dB, where recordings get the default 10:
# docs/measurements/rumble-and-gain.md); and mixup, which lifts the gru trained on it a
# little and leaves recordings as they were (docs/measurements/mixup.md).
SYNTHETIC_AUGMENTATION = {"gain_db": 30.0, "speed_change": 0.1, "room_frequency": 0.5,
                          "microphone_frequency": 0.5, "noise_frequency": 0.8,
                          "mixup_alpha": 0.4}


def _uniform(seed: tf.Tensor, salt: int, shape) -> tf.Tensor:
    """Uniform [0, 1) values for ``shape``, independent for each ``salt``."""
    return tf.random.stateless_uniform(shape, seed=tf.stack([seed, tf.constant(salt, tf.int64)]))


def shift_in_time(values: tf.Tensor, max_shift: int, seed: tf.Tensor,
                  fill: float = 0.0) -> tf.Tensor:
    """Moves each clip along axis 1 (samples or frames) by its own whole number of steps
    in [-max, max]; the gap takes the value ``fill``."""
    batch, length = tf.shape(values)[0], tf.shape(values)[1]
    shifts = tf.cast(tf.floor(_uniform(seed, 1, [batch]) * (2 * max_shift + 1)),
                     tf.int32) - max_shift
    source = tf.range(length)[tf.newaxis, :] - shifts[:, tf.newaxis]
    inside = (source >= 0) & (source < length)
    moved = tf.gather(values, tf.clip_by_value(source, 0, length - 1), batch_dims=1)
    inside = tf.reshape(inside, tf.concat(
        [tf.shape(inside), tf.ones([tf.rank(values) - 2], tf.int32)], axis=0))
    return tf.where(inside, moved, tf.cast(fill, values.dtype))


def shift_frames(log_mel: tf.Tensor, config: AugmentConfig, features: FeatureConfig,
                 seed: tf.Tensor) -> tf.Tensor:
    """The time shift, on log-mel frames (batch, frames, bins) before normalisation.

    Moving whole 10 ms frames costs a hundredth of moving 16,000 samples and gives the
    same spectrogram up to the edge frames; the gap is silence, ``log(log_floor)``.
    """
    max_frames = round(config.time_shift_ms / features.hop_ms)
    if not max_frames:
        return log_mel
    return shift_in_time(log_mel, max_frames, seed, fill=math.log(features.log_floor))


class BackgroundNoise:
    """Background recordings, and the mixing of random windows of them into clips.

    Args:
        recordings: Noise recordings at the model's rate, each at least one clip long.
        clip_samples: Length of a clip in samples.
    """

    def __init__(self, recordings: tuple[np.ndarray, ...], clip_samples: int):
        self.clip_samples = clip_samples
        self.noise = tf.constant(np.concatenate(recordings).astype(np.float32))
        lengths = np.array([len(r) for r in recordings])
        self.starts = tf.constant(np.concatenate([[0], np.cumsum(lengths)[:-1]]), tf.int64)
        # Last possible window start in each recording, so a window never spans two.
        self.spans = tf.constant(lengths - clip_samples + 1, tf.int64)

    def windows(self, batch, seed: tf.Tensor, salt: int) -> tf.Tensor:
        """(batch, clip_samples) random windows of the recordings, drawn with salts
        ``salt`` and ``salt + 1``."""
        count = tf.shape(self.spans, out_type=tf.int64)[0]
        which = tf.minimum(tf.cast(_uniform(seed, salt, [batch]) * tf.cast(count, tf.float32),
                                   tf.int64), count - 1)
        offsets = tf.cast(_uniform(seed, salt + 1, [batch]) *
                          tf.cast(tf.gather(self.spans, which), tf.float32), tf.int64)
        first = tf.gather(self.starts, which) + offsets
        return tf.gather(self.noise, first[:, tf.newaxis] + tf.range(self.clip_samples,
                                                                      dtype=tf.int64))

    def mix(self, clips: tf.Tensor, frequency: float, max_volume: float,
            seed: tf.Tensor) -> tf.Tensor:
        """Adds a random window of noise to a ``frequency`` share of clips, each at its own
        volume up to ``max_volume``; the sum is clipped to [-1, 1] like a recording."""
        batch = tf.shape(clips)[0]
        windows = self.windows(batch, seed, 2)
        volumes = _uniform(seed, 4, [batch]) * max_volume
        volumes = tf.where(_uniform(seed, 5, [batch]) < frequency, volumes, 0.0)
        return tf.clip_by_value(clips + windows * volumes[:, tf.newaxis], -1.0, 1.0)


def _band_masks(batch, size: int, masks: int, max_width: int, seed: tf.Tensor,
                salt: int) -> tf.Tensor:
    """(batch, size) ones, with ``masks`` random bands of up to ``max_width`` set to zero."""
    widths = tf.floor(_uniform(seed, salt, [batch, masks]) * (max_width + 1))
    starts = tf.floor(_uniform(seed, salt + 1, [batch, masks]) * (size - widths + 1))
    position = tf.range(size, dtype=tf.float32)[tf.newaxis, tf.newaxis, :]
    inside = (position >= starts[..., tf.newaxis]) & \
        (position < (starts + widths)[..., tf.newaxis])
    return 1.0 - tf.cast(tf.reduce_any(inside, axis=1), tf.float32)


def spec_augment(features: tf.Tensor, config: AugmentConfig, seed: tf.Tensor) -> tf.Tensor:
    """Zeroes random bands of frames and of mel bins in normalised features (batch, frames,
    bins); zero is the training mean, so a mask carries no information."""
    batch, frames, bins = features.shape[0], features.shape[1], features.shape[2]
    batch = tf.shape(features)[0] if batch is None else batch
    keep_time = _band_masks(batch, frames, config.time_masks, config.time_mask_frames, seed, 6)
    keep_bins = _band_masks(batch, bins, config.frequency_masks, config.frequency_mask_bins,
                            seed, 8)
    return features * keep_time[:, :, tf.newaxis] * keep_bins[:, tf.newaxis, :]


def change_gain(clips: tf.Tensor, max_gain_db: float, seed: tf.Tensor) -> tf.Tensor:
    """Scales each clip by its own gain, uniform in [-max, max] dB, clipped to [-1, 1]."""
    gain_db = (2 * _uniform(seed, 0, [tf.shape(clips)[0]]) - 1) * max_gain_db
    return tf.clip_by_value(clips * 10 ** (gain_db[:, tf.newaxis] / 20), -1.0, 1.0)


def _rms(clips: tf.Tensor) -> tf.Tensor:
    return tf.sqrt(tf.reduce_mean(tf.square(clips), axis=1, keepdims=True))


def play_at_speed(clips: tf.Tensor, factors: tf.Tensor) -> tf.Tensor:
    """Each clip played ``factors`` times as fast about its centre, by linear
    interpolation: a tone of f Hz becomes one of ``factor * f`` Hz; the gap is silence."""
    length = tf.shape(clips)[1]
    centre = tf.cast(length - 1, tf.float32) / 2
    position = centre + (tf.range(length, dtype=tf.float32)[tf.newaxis, :] - centre) * \
        factors[:, tf.newaxis]
    below = tf.floor(position)
    weight = position - below
    below = tf.cast(below, tf.int32)

    def sample(index):
        inside = (index >= 0) & (index < length)
        return tf.where(inside, tf.gather(clips, tf.clip_by_value(index, 0, length - 1),
                                          batch_dims=1), 0.0)

    return sample(below) * (1 - weight) + sample(below + 1) * weight


def change_speed(clips: tf.Tensor, max_change: float, seed: tf.Tensor) -> tf.Tensor:
    """``play_at_speed`` at a factor of its own per clip, uniform in [1 - max, 1 + max]."""
    factors = 1 + (2 * _uniform(seed, 10, [tf.shape(clips)[0]]) - 1) * max_change
    return play_at_speed(clips, factors)


def microphone_gains(frequencies_hz: np.ndarray, batch, seed: tf.Tensor) -> tf.Tensor:
    """(batch, frequencies) magnitude responses of random microphones and channels: a
    second-order low cut at 50-400 Hz, a high cut at 3-8 kHz, and three bell-shaped peaks
    or dips (half an octave wide, up to 6 dB) between 200 Hz and 6 kHz."""
    hz = tf.constant(np.maximum(frequencies_hz, 1.0), tf.float32)[tf.newaxis, :]
    low_cut = 50.0 * 8.0 ** _uniform(seed, 13, [batch, 1])
    high_cut = 3000.0 * (8000.0 / 3000.0) ** _uniform(seed, 14, [batch, 1])
    gains = tf.math.rsqrt(1 + (low_cut / hz) ** 4) * tf.math.rsqrt(1 + (hz / high_cut) ** 4)
    centres = tf.math.log(200.0) + _uniform(seed, 15, [batch, 3, 1]) * math.log(6000 / 200)
    peak_db = (2 * _uniform(seed, 16, [batch, 3, 1]) - 1) * 6.0
    octaves = (tf.math.log(hz[:, tf.newaxis, :]) - centres) / math.log(2.0)
    bells_db = tf.reduce_sum(peak_db * tf.exp(-0.5 * tf.square(octaves / 0.25)), axis=1)
    return gains * 10 ** (bells_db / 20)


def through_microphones(log_mel: tf.Tensor, mel_weights: tf.Tensor, frequency: float,
                        features: FeatureConfig, seed: tf.Tensor) -> tf.Tensor:
    """A ``frequency`` share of log-mel features (batch, frames, bins) as heard through
    ``microphone_gains``: each mel band's power scaled by the filter's mean power gain over
    the band (``mel_weights``, FFT bins by mel bins), which is exact for a response that is
    smooth across a band and costs no FFT."""
    batch = tf.shape(log_mel)[0]
    hz = np.linspace(0, features.sample_rate / 2, mel_weights.shape[0])
    power_gains = tf.square(microphone_gains(hz, batch, seed)) @ mel_weights / \
        tf.reduce_sum(mel_weights, axis=0)
    coloured = _uniform(seed, 17, [batch, 1]) < frequency
    power_gains = tf.where(coloured, power_gains, 1.0)[:, tf.newaxis, :]
    floor = features.log_floor
    return tf.math.log(tf.maximum(tf.exp(log_mel) - floor, 0.0) * power_gains + floor)


def _fast_fft_length(samples: int) -> int:
    """The smallest length of at least ``samples`` with no prime factor above 5 (a power
    of two can be half as fast again)."""
    length = samples
    while True:
        rest = length
        for prime in (2, 3, 5):
            while rest % prime == 0:
                rest //= prime
        if rest == 1:
            return length
        length += 1


def room_spectra(responses: np.ndarray, clip_samples: int) -> tuple[tf.Tensor, int]:
    """The room responses' spectra for a linear (not circular) convolution with clips of
    ``clip_samples``, and the FFT length they need."""
    fft_length = _fast_fft_length(clip_samples + responses.shape[1] - 1)
    return tf.constant(np.fft.rfft(responses, fft_length).astype(np.complex64)), fft_length


def reverberate(clips: tf.Tensor, rooms: tuple[tf.Tensor, int], frequency: float,
                seed: tf.Tensor) -> tf.Tensor:
    """A ``frequency`` share of clips convolved with a random room of ``rooms``
    (``room_spectra``); each keeps its RMS level, and the tail past the clip is cut."""
    bank, fft_length = rooms
    batch, length = tf.shape(clips)[0], clips.shape[1]
    count = tf.shape(bank, out_type=tf.int64)[0]
    which = tf.minimum(tf.cast(_uniform(seed, 11, [batch]) * tf.cast(count, tf.float32),
                               tf.int64), count - 1)
    heard = tf.signal.irfft(tf.signal.rfft(clips, [fft_length]) * tf.gather(bank, which),
                            [fft_length])[:, :length]
    heard *= _rms(clips) / tf.maximum(_rms(heard), 1e-9)
    return tf.where(_uniform(seed, 12, [batch, 1]) < frequency, heard, clips)


def sloped_noise(samples: int, slope: float, rng: np.random.Generator) -> np.ndarray:
    """Noise of unit RMS whose power falls as 1/f^slope: 0 white, 1 pink, 2 brown."""
    bins = np.arange(samples // 2 + 1)
    spectrum = np.fft.rfft(rng.standard_normal(samples)) * np.maximum(bins, 1.0) ** (-slope / 2)
    return _unit_rms(np.fft.irfft(spectrum, samples))


def rumble(samples: int, sample_rate: int, cutoff_hz: float,
           rng: np.random.Generator) -> np.ndarray:
    """White noise of unit RMS with nothing above ``cutoff_hz``: traffic, wind, handling
    and air conditioning, which people's recordings have and synthetic speech lacks."""
    spectrum = np.fft.rfft(rng.standard_normal(samples))
    spectrum[np.fft.rfftfreq(samples, 1 / sample_rate) > cutoff_hz] = 0
    return _unit_rms(np.fft.irfft(spectrum, samples))


def mains_hum(samples: int, sample_rate: int, mains_hz: float,
              rng: np.random.Generator, harmonics: int = 8) -> np.ndarray:
    """Hum of unit RMS: ``mains_hz`` (50 or 60) and its first harmonics, each 0.6 times
    the one below, at random phases."""
    times = np.arange(samples) / sample_rate
    hum = sum(0.6 ** k * np.sin(2 * np.pi * mains_hz * (k + 1) * times + rng.uniform(0, 2 * np.pi))
              for k in range(harmonics))
    return _unit_rms(hum)


def _unit_rms(noise: np.ndarray) -> np.ndarray:
    return (noise / noise.std()).astype(np.float32)


# The bank's low-frequency sounds: a synthetic-only gru called real clips with a rumble
# under them "no" (docs/measurements/rumble-and-gain.md).
RUMBLE_CUTOFFS_HZ = (150.0, 400.0)
MAINS_HZ = (50.0, 60.0)


def coloured_noise_bank(sample_rate: int, seconds: float = 10.0) -> tuple[np.ndarray, ...]:
    """Noise recordings of unit RMS, the same every run: power falling as 1/f^a for a in
    0, 0.5, ..., 2 (white, pink (1), brown (2) and between), rumble below each of
    ``RUMBLE_CUTOFFS_HZ`` and the hum of each of ``MAINS_HZ``."""
    rng = np.random.default_rng(0)
    samples = round(seconds * sample_rate)
    return (*(sloped_noise(samples, slope, rng) for slope in (0.0, 0.5, 1.0, 1.5, 2.0)),
            *(rumble(samples, sample_rate, cutoff, rng) for cutoff in RUMBLE_CUTOFFS_HZ),
            *(mains_hum(samples, sample_rate, mains, rng) for mains in MAINS_HZ))


def add_coloured_noise(clips: tf.Tensor, coloured: BackgroundNoise, config: AugmentConfig,
                       seed: tf.Tensor) -> tf.Tensor:
    """A ``noise_frequency`` share of clips mixed with a window of ``coloured``
    (``coloured_noise_bank``) at a random signal-to-noise ratio between the config's bounds,
    relative to the clip's RMS."""
    batch = tf.shape(clips)[0]
    noise = coloured.windows(batch, seed, 22)
    snr_db = config.noise_snr_min_db + _uniform(seed, 20, [batch, 1]) * (
        config.noise_snr_max_db - config.noise_snr_min_db)
    noisy = _uniform(seed, 21, [batch, 1]) < config.noise_frequency
    scale = tf.where(noisy, _rms(clips) / 10 ** (snr_db / 20) / tf.maximum(_rms(noise), 1e-9),
                     0.0)
    return clips + noise * scale


def augment_waveforms(clips: tf.Tensor, config: AugmentConfig,
                      background: BackgroundNoise | None, seed: tf.Tensor,
                      rooms: tuple[tf.Tensor, int] | None = None,
                      coloured: BackgroundNoise | None = None) -> tf.Tensor:
    """On waveforms, in the order sound meets them: the speaker's speed, the room
    (``room_spectra``, when there are any), the level, then background recordings (when
    there are any) and coloured noise (windows of ``coloured_noise_bank``); clipped to
    [-1, 1]. The microphone comes after, on the features (``through_microphones``)."""
    if config.speed_change:
        clips = change_speed(clips, config.speed_change, seed)
    if rooms is not None and config.room_frequency:
        clips = reverberate(clips, rooms, config.room_frequency, seed)
    if config.gain_db:
        clips = change_gain(clips, config.gain_db, seed)
    if background is not None and config.background_frequency > 0:
        clips = background.mix(clips, config.background_frequency, config.background_volume,
                               seed)
    if coloured is not None and config.noise_frequency:
        clips = tf.clip_by_value(add_coloured_noise(clips, coloured, config, seed), -1.0, 1.0)
    return clips
