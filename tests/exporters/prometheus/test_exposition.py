import math

from prometheus_client.parser import text_string_to_metric_families

from ebbflow.exporters.prometheus.exposition import Exposition
from ebbflow.model import Sample, labels_of


def test_text_format_with_escapes_special_values_and_families_across_sources() -> None:
    tricky = labels_of({"name": 'a"b\\c\nd', "image": "x"})
    sources = [
        {
            1: Sample("x_total", 3.0, tricky, 1.0, "counter", "Help \\ me\nnow"),
            2: Sample("g", float("nan"), ()),
            3: Sample("g", math.inf, labels_of({"k": "v"})),
        },
        {
            4: Sample("g", -1e20, labels_of({"k": "w"})),
            5: Sample("x_total", 4.0, (), 1.0, "counter"),
        },
    ]
    text = Exposition().render(sources).decode()
    assert text.count("# TYPE g gauge") == 1 and text.count("# TYPE x_total counter") == 1
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["x"].type == "counter" and families["x"].documentation == "Help \\ me\nnow"
    values = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    assert values[("x_total", (("image", "x"), ("name", 'a"b\\c\nd')))] == 3.0
    assert values[("x_total", ())] == 4.0
    assert math.isnan(values[("g", ())])
    assert values[("g", (("k", "v"),))] == math.inf
    assert values[("g", (("k", "w"),))] == -1e20


def test_label_cache_is_forgotten_when_series_go() -> None:
    exposition = Exposition()
    many = {i: Sample("g", 1.0, labels_of({"n": str(i)})) for i in range(3000)}
    exposition.render([many])
    assert exposition.render([{0: Sample("g", 2.0, labels_of({"n": "0"}))}]) == (
        b'# HELP g \n# TYPE g gauge\ng{n="0"} 2.0\n'
    )
    exposition.render([{0: Sample("g", 2.0, labels_of({"n": "0"}))}])
    assert len(exposition._labels) <= 1
