"""Download and extraction, against a loopback HTTP server the test starts: no network."""

import dataclasses
import hashlib
import http.server
import io
import tarfile
import threading
from pathlib import Path
from unittest import mock

import tensorflow as tf

from kws.data import download
from kws.errors import InputError
from kws.run import TrainConfig, load_data
from tests import fixtures


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves ``files`` by path and honours ``Range: bytes=N-``, as a real server does."""

    files: dict[str, bytes] = {}
    ranges: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        requested = self.headers.get("Range")
        self.ranges.append(requested)
        if requested:
            body = body[int(requested.removeprefix("bytes=").rstrip("-")):]
            self.send_response(206)
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def tar_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


class DownloadTest(tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
        threading.Thread(target=cls.server.serve_forever, daemon=True).start()
        cls.base = f"http://127.0.0.1:{cls.server.server_port}"

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        RangeHandler.ranges.clear()
        self.folder = Path(self.create_tempdir().full_path)
        self.payload = bytes(range(256)) * 4000
        RangeHandler.files["/data.bin"] = self.payload
        self.sha = hashlib.sha256(self.payload).hexdigest()

    def test_downloads_and_verifies(self):
        target = download.download(f"{self.base}/data.bin", self.folder / "data.bin", self.sha)
        self.assertEqual(target.read_bytes(), self.payload)
        self.assertEqual(sorted(p.name for p in self.folder.iterdir()), ["data.bin"])
        download.download(f"{self.base}/data.bin", target, self.sha)  # cached: no request
        self.assertEqual(RangeHandler.ranges, [None])

    def test_an_interrupted_download_resumes(self):
        (self.folder / "data.bin.part").write_bytes(self.payload[:300_000])
        target = download.download(f"{self.base}/data.bin", self.folder / "data.bin", self.sha)
        self.assertEqual(RangeHandler.ranges, ["bytes=300000-"])
        self.assertEqual(target.read_bytes(), self.payload)

    def test_a_wrong_checksum_deletes_the_file(self):
        with self.assertRaisesRegex(InputError, "downloaded file has sha256 .*, expected 00"):
            download.download(f"{self.base}/data.bin", self.folder / "data.bin", "00" * 32)
        self.assertEmpty(list(self.folder.iterdir()))

    def test_an_unreachable_server_is_one_line(self):
        with self.assertRaisesRegex(InputError, "cannot download .*/missing.bin .*resume"):
            download.download(f"{self.base}/missing.bin", self.folder / "x.bin", self.sha)

    def test_train_fetches_a_dataset_once(self):
        words = fixtures.write_word_folder(self.folder / "words", {"yes": 300.0, "no": 500.0},
                                           [f"spk{i}" for i in range(12)], takes=1)
        archive = tar_bytes({path.relative_to(words).as_posix(): path.read_bytes()
                             for path in sorted(words.rglob("*.wav"))})
        RangeHandler.files["/commands.tar.gz"] = archive
        published = download.Archive("commands", f"{self.base}/commands.tar.gz",
                                     hashlib.sha256(archive).hexdigest())
        config = TrainConfig(output_dir=self.folder / "run", dataset="speech_commands_v1",
                             wanted_words=("yes", "no"), cache_dir=self.folder / "cache")
        with mock.patch.dict(download.DATASETS, {"speech_commands_v1": published}):
            data = load_data(config)
            load_data(dataclasses.replace(config, seed=1))  # extracted once, reused
        self.assertEqual(data.labels, ("_silence_", "yes", "no"))
        self.assertEqual(RangeHandler.ranges, [None])
        self.assertTrue((self.folder / "cache" / "datasets" / "commands" / "yes").is_dir())


class ExtractTest(tf.test.TestCase):
    def test_members_outside_the_folder_are_refused(self):
        root = Path(self.create_tempdir().full_path)
        archive = root / "evil.tar.gz"
        archive.write_bytes(tar_bytes({"yes/a.wav": b"fine", "../../escaped.txt": b"evil"}))
        with self.assertRaisesRegex(InputError, "evil.tar.gz: unsafe archive, refused"):
            download.extract(archive, root / "out" / "data")
        self.assertFalse((root / "escaped.txt").exists())
        self.assertFalse((root / "out" / "data").exists())
        self.assertEmpty(list((root / "out").iterdir()))  # no staging folder left behind

    def test_absolute_members_are_refused(self):
        root = Path(self.create_tempdir().full_path)
        archive = root / "abs.tar.gz"
        archive.write_bytes(tar_bytes({"/tmp/kws-absolute-member.txt": b"evil"}))
        # The data filter refuses absolute names or strips them to stay inside; either way
        # nothing lands outside the target folder.
        try:
            download.extract(archive, root / "data")
        except InputError as error:
            self.assertIn("unsafe archive", str(error))
        self.assertFalse(Path("/tmp/kws-absolute-member.txt").exists())

    def test_a_damaged_archive_is_one_line(self):
        root = Path(self.create_tempdir().full_path)
        archive = root / "cut.tar.gz"
        archive.write_bytes(tar_bytes({"yes/a.wav": b"x" * 10000})[:40])
        with self.assertRaisesRegex(InputError, "cut.tar.gz: cannot extract .*delete it"):
            download.extract(archive, root / "data")


if __name__ == "__main__":
    tf.test.main()
