from rich.console import Console

from musicbench.evaluation.report import print_summary


def test_table_shows_model_baseline_and_improvement():
    summary = {
        "num_tracks": 2,
        "split": "test",
        "input_baseline": "mixture",
        "systems": {
            "model": {"median": {"a": {"global_sdr": 5.0}, "b": {"global_sdr": 3.0}}},
            "mixture": {"median": {"a": {"global_sdr": -4.0}, "b": {"global_sdr": -6.0}}},
        },
    }
    console = Console(record=True, width=120)
    print_summary(summary, console)
    text = " ".join(console.export_text().split())
    assert "5.00 (+9.00)" in text and "3.00 (+9.00)" in text  # value (improvement) of each source
    assert "4.00 (+9.00)" in text  # the mean row
    assert "2 test tracks" in text


def test_table_uses_the_input_baseline_of_restoration():
    summary = {
        "num_tracks": 1,
        "split": "test",
        "input_baseline": "input",
        "systems": {
            "model": {"median": {"clean": {"snr": 12.5, "lsd": 3.0}}},
            "input": {"median": {"clean": {"snr": 10.0, "lsd": 5.0}}},
        },
    }
    console = Console(record=True, width=120)
    print_summary(summary, console)
    text = " ".join(console.export_text().split())
    assert "12.50 (+2.50)" in text and "3.00 (-2.00)" in text
    assert "input baseline" in text


def test_cells_that_aggregate_fewer_tracks_say_how_many():
    """A source with a NaN track value (e.g. a silent reference) is the median of fewer tracks: its cells
    and the mean row say n, so the header's track count is never claimed for them."""
    summary = {
        "num_tracks": 2,
        "split": "test",
        "input_baseline": "mixture",
        "systems": {
            "model": {
                "median": {"a": {"sdr": 5.0}, "b": {"sdr": 3.0}},
                "num_tracks": {"a": {"sdr": 2}, "b": {"sdr": 1}},
            },
            "mixture": {
                "median": {"a": {"sdr": -4.0}, "b": {"sdr": -6.0}},
                "num_tracks": {"a": {"sdr": 2}, "b": {"sdr": 1}},
            },
        },
    }
    console = Console(record=True, width=160)
    print_summary(summary, console)
    text = " ".join(console.export_text().split())
    assert "5.00 (+9.00) │" in text  # all tracks: no count
    assert "3.00 (+9.00) [n=1]" in text and "4.00 (+9.00) [n=1]" in text  # source b and the mean row
    assert "median over 2 test tracks (dB); [n=k]: over the k of 2 tracks" in text
