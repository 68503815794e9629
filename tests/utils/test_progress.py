from musicbench.utils.progress import progress_bar


def test_disabled_bar_accepts_the_same_calls():
    with progress_bar(False, label="x") as bar:
        task = bar.add_task("work", total=2)
        bar.advance(task)
        bar.update(task, description="more", advance=1)
    assert bar.tasks[0].completed == 2


def test_label_is_shown_literally_before_the_description():
    with progress_bar(False, label="mp3 {pairs}") as bar:
        task = bar.add_task("track-1", total=1)
    label, description = (column.render(bar.tasks[task]) for column in bar.columns[:2])
    assert str(label) == "mp3 {pairs}" and str(description) == "track-1"
