"""Simulated rooms: the reverberation time asked for, and a bank made once."""

from pathlib import Path
from unittest import mock

import numpy as np
import pyroomacoustics
import tensorflow as tf
from absl.testing import parameterized

from kws.data import rooms


class RoomResponseTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters(0.15, 0.4, 0.75)
    def test_the_reverberation_time_asked_for(self, rt60_s):
        response, measured = rooms.room_response(rt60_s, 16000, np.random.default_rng(3),
                                                 length=16000)
        self.assertEqual(response.shape, (16000,))
        self.assertEqual(np.abs(response).max(), 1.0)
        # Measured again, independently of the tuning, on what training gets (20 dB of
        # decay, as a 1 s response of a 0.1 s room holds no more above its noise floor).
        again = pyroomacoustics.experimental.measure_rt60(response, fs=16000, decay_db=20)
        self.assertBetween(again / rt60_s, 0.8, 1.2)
        self.assertBetween(measured / rt60_s, 0.95, 1.05)

    def test_the_direct_path_comes_first(self):
        response, _ = rooms.room_response(0.5, 16000, np.random.default_rng(0), length=8000)
        self.assertEqual(int(np.argmax(np.abs(response))), rooms.DIRECT_PATH_LEAD)


class RoomBankTest(tf.test.TestCase):
    def test_made_once_then_read_from_the_cache(self):
        cache = Path(self.create_tempdir().full_path)
        bank = rooms.room_bank(3, 0, 16000, 4000, cache)
        self.assertEqual(bank.shape, (3, 4000))
        self.assertNotAllClose(bank[0], bank[1])
        with mock.patch.object(rooms, "room_response", side_effect=AssertionError("no cache")):
            self.assertAllEqual(rooms.room_bank(3, 0, 16000, 4000, cache), bank)
        self.assertLen(list(cache.glob("rooms-*.npz")), 1)
        self.assertNotAllClose(rooms.room_bank(3, 1, 16000, 4000, cache), bank)
        # Made again elsewhere, the same seed gives the same rooms: runs are reproducible.
        elsewhere = Path(self.create_tempdir().full_path)
        self.assertAllEqual(rooms.room_bank(3, 0, 16000, 4000, elsewhere), bank)

    def test_a_damaged_bank_is_simulated_again(self):
        cache = Path(self.create_tempdir().full_path)
        bank = rooms.room_bank(2, 0, 16000, 4000, cache)
        (path,) = cache.glob("rooms-*.npz")
        path.write_bytes(b"PK\x03\x04 torn")
        with self.assertLogs(level="WARNING") as logs:
            self.assertAllEqual(rooms.room_bank(2, 0, 16000, 4000, cache), bank)
        self.assertIn(f"Room bank {path} is damaged", logs.output[0])
        with np.load(path) as rebuilt:
            self.assertAllEqual(rebuilt["responses"], bank)
