"""A tf.data service for ``kws.train --data_service``: ``python -m kws.data_service``.

    python -m kws.data_service --port=5050                          # the dispatcher
    python -m kws.data_service --dispatcher=HOST:5050 --port=5051   # a worker, on each machine
    python -m kws.train --prepared_dir=SHARED/prepared --data_service=HOST:5050

The trainer sends the training pipeline's graph (reading the prepared shards, augmentation,
features) to the dispatcher; each worker computes whole batches of it, every batch once per
epoch. Workers need TensorFlow and the prepared folder at the same path, nothing of kws.
Runs until Ctrl-C.
"""

from __future__ import annotations

import sys

from absl import app, flags, logging

_PORT = flags.DEFINE_integer("port", 5050, "Port to serve on.", lower_bound=1,
                             upper_bound=65535)
_DISPATCHER = flags.DEFINE_string(
    "dispatcher", None, "host:port of the dispatcher: run a worker that serves it. Leave "
    "out to run the dispatcher.")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        sys.exit(f"kws.data_service: error: unexpected arguments {argv[1:]}; flags look like "
                 "--port=5050")
    import tensorflow as tf

    service = tf.data.experimental.service
    try:
        if _DISPATCHER.value:
            server = service.WorkerServer(service.WorkerConfig(
                dispatcher_address=_DISPATCHER.value.removeprefix("grpc://"), port=_PORT.value))
            logging.info("tf.data service worker on port %d, serving the dispatcher at %s",
                         _PORT.value, _DISPATCHER.value)
        else:
            server = service.DispatchServer(service.DispatcherConfig(port=_PORT.value))
            logging.info("tf.data service dispatcher at %s; train with --data_service=HOST:%d",
                         server.target, _PORT.value)
        server.join()
    except tf.errors.OpError as error:  # the port is taken, the dispatcher unknown
        sys.exit(f"kws.data_service: error: --port={_PORT.value}: {error.message}")
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    app.run(main)
