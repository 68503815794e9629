from musicbench.evaluation.systems import is_model_system, sample_name, sample_names


def test_sample_names_are_ordered_by_number():
    systems = ["mean", sample_name(10), sample_name(9), "sample_x", sample_name(0), "mixture"]
    assert sample_names(systems) == ["sample_0", "sample_9", "sample_10"]
    assert sample_names(["model"]) == []


def test_model_system_names_are_reserved():
    assert all(is_model_system(n) for n in ("model", "mean", "best_of_k", "diversity", "sample_2"))
    assert not any(is_model_system(n) for n in ("mixture", "input"))
