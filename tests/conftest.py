"""Lets absltest helpers (create_tempdir, ...) run under pytest, which parses no absl flags."""

from absl import flags


def pytest_configure(config):
    del config
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


# Test files whose classes train models, slowest first: handed to the workers before the
# quick ones, so that no worker is left alone with a two-minute class at the end.
SLOW_FIRST = ("training_test.py", "distribute_test.py", "hostile_input_test.py",
              "prepared_test.py", "seeds_test.py", "evaluate_test.py", "stream_eval_test.py",
              "synthetic_test.py", "micro_test.py", "export_test.py")


def pytest_collection_modifyitems(config, items):
    del config

    def rank(item) -> int:
        name = item.path.name
        return SLOW_FIRST.index(name) if name in SLOW_FIRST else len(SLOW_FIRST)

    items.sort(key=rank)  # stable: the order within each file stays
