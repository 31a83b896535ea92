"""The server-rendered pages: list, search, module card, leaderboard, Pareto plot, 404."""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

import registry
from registry.server import create_app
from tests.conftest import MODULES, git, make_repo

EVIL = "<script>alert('x')</script> & friends"


def _edit(path: Path, **changes: object) -> None:
    data = yaml.safe_load(path.read_text())
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        target = data
        for key in parents:
            target = target[key]
        target[leaf] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TestClient]:
    """A registry with gravity (1.0.0 in prod, and 1.1.0), drag, drag-net, a distilled
    drag-eq and a module with markup in its summary, all registered; and, in the working
    tree only, the baseball-flight composite and an over-budget copy of drag-net."""
    repo = make_repo(tmp_path_factory.mktemp("web") / "repo",
                     ["gravity", "drag", "drag-net", "drag-eq"])
    modules = repo / "modules"
    # make_repo registers everything as 1.0.0: the distilled module follows its teacher.
    _edit(modules / "drag-eq" / "module.yaml", evaluation__reference__module="drag-net@1.0.0",
          provenance__distilled_from="drag-net@1.0.0")
    shutil.copytree(modules / "gravity", modules / "evil")
    _edit(modules / "evil" / "module.yaml", name="evil", summary=EVIL)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "web fixtures")
    reg = registry.open(repo)
    for name in ("gravity", "drag", "drag-net", "drag-eq", "evil"):
        reg.register(modules / name)
    reg.promote("gravity@1.0.0", "prod")
    _edit(modules / "gravity" / "module.yaml", summary="Newtonian gravity, revised")
    reg.register(modules / "gravity", bump="minor")
    # Working tree only (never registered).
    shutil.copytree(MODULES / "baseball-flight", modules / "baseball-flight")
    shutil.copytree(modules / "drag-net", modules / "fat-net")
    _edit(modules / "fat-net" / "module.yaml", name="fat-net",
          budget={"max_flops_per_sample": 100, "min_r2": 0.99})
    return repo, TestClient(create_app(repo))


def _text(page: str) -> str:
    """The page's text, tags dropped and entities decoded (for assertions on what one reads)."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page))).strip()


def _cell(page: str, row_id: str) -> str:
    """The machine-readable value in the `<tr id=row_id>` of a cost table."""
    match = re.search(rf'<tr id="{row_id}">.*?<data value="([^"]+)">', page, re.S)
    assert match, f"no row {row_id}"
    return match.group(1)


def test_list_shows_registered_modules_with_latest_version_and_cost(site):
    _, client = site
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    for name in ("gravity", "drag", "drag-net", "drag-eq"):
        assert f'<a href="/modules/{name}">{name}</a>' in page
    row = re.search(r'<a href="/modules/gravity">gravity</a></th>(.*?)</tr>', page, re.S)
    assert row is not None
    cells = _text(row.group(1))
    assert "1.1.0" in cells and "equation" in cells and "revised" in cells
    assert "prod → 1.0.0" in cells
    assert '<data value="4">4</data>' in row.group(1)
    assert "J est." in cells  # the energy figure is a power-model estimate
    assert '<a href="/leaderboard"' in page


def test_search_filters_on_the_server(site):
    _, client = site
    page = client.get("/", params={"q": "grav"}).text
    assert 'href="/modules/gravity"' in page
    assert 'href="/modules/drag"' not in page and 'href="/modules/drag-net"' not in page
    assert 'value="grav"' in page  # the box keeps the query


def test_kind_filter_keeps_one_kind(site):
    _, client = site
    page = client.get("/", params={"kind": "network"}).text
    assert 'href="/modules/drag-net"' in page
    assert 'href="/modules/gravity"' not in page
    assert '<option value="network" selected>' in page


def test_search_form_is_labelled_and_needs_no_script(site):
    _, client = site
    page = client.get("/").text
    assert '<form class="search" method="get" action="/"' in page
    assert '<label for="q">' in page and '<label for="kind">' in page
    assert "<script" not in page


def test_list_shows_unregistered_working_tree_modules(repo):
    page = TestClient(create_app(repo)).get("/").text
    section = page[page.index("not registered yet"):]
    for name in ("gravity", "drag", "drag-net"):
        assert f'<a href="/modules/{name}?version=workspace">{name}</a>' in section


def test_module_page_renders_the_equation_as_mathml(site):
    _, client = site
    page = client.get("/modules/gravity").text
    math = re.search(r"<math [^>]*>.*?</math>", page, re.S)
    assert math is not None
    assert 'xmlns="http://www.w3.org/1998/Math/MathML" display="block"' in math.group(0)
    assert "<mi>G</mi>" in math.group(0)
    assert "<msub><mi>m</mi><mi>1</mi></msub>" in math.group(0)
    assert "<mfrac>" in math.group(0) and "<msup><mi>r</mi><mn>2</mn></msup>" in math.group(0)
    assert "<code>F = G*m1*m2/r**2</code>" in page


def test_module_page_shows_ports_units_and_constants(site):
    _, client = site
    text = _text(client.get("/modules/drag").text)
    assert "rho input kg/m^3 [0.5, 1.5] fluid density" in text
    assert "F output N" in text
    gravity = _text(client.get("/modules/gravity").text)
    assert "G 6.674e-11 m^3 kg^-1 s^-2 no" in gravity


@pytest.mark.parametrize("name", ["gravity", "drag-net", "drag-eq"])
def test_cost_table_values_equal_the_manifest(site, name):
    repo, client = site
    cost = registry.open(repo).get(name).cost
    page = client.get(f"/modules/{name}").text
    assert int(_cell(page, "cost-flops")) == cost.flops_per_sample
    assert int(_cell(page, "cost-flops-backward")) == cost.flops_per_sample_backward
    assert int(_cell(page, "cost-params")) == cost.params
    assert cost.latency_ns_per_sample is not None and cost.energy_j_per_sample is not None
    assert float(_cell(page, "cost-latency")) == cost.latency_ns_per_sample.value
    assert float(_cell(page, "cost-energy")) == cost.energy_j_per_sample.value



def test_cost_table_shows_modeled_and_measured_energy_each_with_its_method(site):
    repo, client = site
    cost = registry.open(repo).get("drag-net").cost
    modeled, measured = cost.energy_modeled_j_per_sample, cost.energy_j_per_sample
    assert modeled is not None and measured is not None
    page = client.get("/modules/drag-net").text
    assert float(_cell(page, "cost-energy-modeled")) == modeled.value
    row = re.search(r'<tr id="cost-energy-modeled">(.*?)</tr>', page, re.S)
    assert row and "modeled:horowitz-45nm, table v1, batch 1024" in _text(row.group(1))
    row = re.search(r'<tr id="cost-energy">(.*?)</tr>', page, re.S)
    assert row and str(measured.method) in row.group(1)

def test_budget_lines_sit_beside_the_recorded_value_with_a_mark(site):
    _, client = site
    passing = _text(client.get("/modules/gravity").text)
    assert "max_flops_per_sample ≤ 10 4 ✓ pass" in passing
    assert "min_r2 ≥ 0.9999 1 ✓ pass" in passing
    failing = _text(client.get("/modules/fat-net").text)
    assert "max_flops_per_sample ≤ 100 9,995 ✗ fail" in failing
    assert "min_r2 ≥ 0.99 0.9999 ✓ pass" in failing


def test_provenance_links_teacher_commit_and_mlflow_run(site):
    repo, client = site
    reg = registry.open(repo)
    page = client.get("/modules/drag-eq").text
    assert '<a href="/modules/drag-net?version=1.0.0">drag-net@1.0.0</a>' in page
    resolved = reg.resolve("drag-eq")
    assert resolved.commit is not None and resolved.commit in page
    git_info = resolved.manifest.provenance.git
    assert git_info is not None and git_info.commit is not None and git_info.commit in page
    net = client.get("/modules/drag-net").text
    run = reg.resolve("drag-net").manifest.provenance.mlflow
    assert run is not None and run.run_id in net  # its MLflow run id
    assert "data/drag/train.npz" in net


def test_composite_page_links_parents_and_lists_nodes(site):
    _, client = site
    page = client.get("/modules/baseball-flight").text
    assert "working tree" in _text(page)
    assert '<a href="/modules/drag?version=1.0.1">drag@1.0.1</a>' in page
    assert '<a href="/modules/gravity?version=1.0.1">gravity@1.0.1</a>' in page
    nodes = _text(page[page.index('id="composition"'):page.index('id="cost"')])
    assert "gravity gravity@1.0.1 F_g" in nodes
    assert "residual inline MLP, hidden [16, 16], tanh" in nodes


def test_versions_are_listed_with_stages_and_a_version_can_be_picked(site):
    _, client = site
    latest = client.get("/modules/gravity").text
    assert '<a href="/modules/gravity?version=1.1.0" aria-current="page">1.1.0</a>' in latest
    assert '<a href="/modules/gravity?version=1.0.0">1.0.0</a>' in latest
    old = client.get("/modules/gravity", params={"version": "1.0.0"}).text
    assert "<h1>gravity <span class=\"version\">1.0.0</span></h1>" in old
    assert "Newtonian attraction between two point masses" in old
    versions = _text(old[old.index('id="versions"'):])
    assert "1.0.0 prod" in versions


def test_distilled_module_shows_and_serves_its_pareto_plot(site):
    _, client = site
    page = client.get("/modules/drag-eq").text
    assert '<img src="/modules/drag-eq/pareto.png?version=1.0.0"' in page
    image = client.get("/modules/drag-eq/pareto.png", params={"version": "1.0.0"})
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"
    assert image.content == (MODULES / "drag-eq" / "pareto.png").read_bytes()


def test_module_without_a_pareto_plot_has_none(site):
    _, client = site
    assert "pareto.png" not in client.get("/modules/gravity").text
    response = client.get("/modules/gravity/pareto.png")
    assert response.status_code == 404
    assert "pareto.png" in response.text


@pytest.mark.parametrize("url", ["/modules/nope", "/modules/Not..A-Name",
                                 "/modules/gravity?version=9.9.9",
                                 "/modules/gravity?version=not-a-version",
                                 "/modules/nope/pareto.png"])
def test_unknown_module_or_version_is_an_html_404(site, url):
    _, client = site
    response = client.get(url)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "<h1>Not found</h1>" in response.text


def test_summary_markup_is_escaped(site):
    _, client = site
    for url in ("/", "/modules/evil", "/?q=script"):
        page = client.get(url).text
        assert "<script>" not in page
        assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; friends" in page


def test_network_page_shows_architecture_and_parameters(site):
    _, client = site
    response = client.get("/modules/drag-net")
    assert response.status_code == 200
    network = _text(response.text[response.text.index('id="network"'):
                                  response.text.index('id="cost"')])
    assert "Architecture mlp" in network
    assert "hidden [64, 64]" in network and "activation tanh" in network
    assert "Parameters 4,545" in network
    assert "<math" not in response.text  # networks have no equation


def test_leaderboard_ranks_by_flops_and_by_energy(site):
    repo, client = site
    page = client.get("/leaderboard").text
    flops = page[page.index('id="by-flops"'):page.index('id="by-energy"')]
    order = re.findall(r'<a href="/modules/([a-z-]+)">', flops)
    assert order[-1] == "drag-net"
    reg = registry.open(repo)
    figures = [reg.get(n).cost.flops_per_sample or 0 for n in order]
    assert figures == sorted(figures) and 0 not in figures
    energy = page[page.index('id="by-energy"'):]
    names = re.findall(r'<a href="/modules/([a-z-]+)">', energy)
    values = [reg.get(n).cost.energy_j_per_sample.value for n in names]
    assert values == sorted(values) and set(names) == set(order)
    assert "est." in energy


def test_pages_load_nothing_from_elsewhere_and_forbid_scripts(site):
    _, client = site
    response = client.get("/modules/drag-eq")
    assert "script-src" not in response.headers["content-security-policy"]
    assert "default-src 'none'" in response.headers["content-security-policy"]
    external = re.findall(r'(?:src|href)="(https?:[^"]*)"', response.text)
    assert external == []
    css = client.get("/static/style.css")
    assert css.status_code == 200 and "text/css" in css.headers["content-type"]


# lineage ----------------------------------------------------------------------------


def _lineage(page: str) -> str:
    """The markup of the page's Lineage section."""
    start = page.index('<section aria-labelledby="lineage">')
    return page[start:page.index("</section>", start)]


@pytest.fixture(scope="module")
def flight(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TestClient]:
    """A registry with gravity@1.0.1 and drag@1.0.1 and the baseball-flight@1.0.1 composite
    that pins them, all registered. The composite is committed with the figures its seed
    manifest records (measuring its ODE again would take minutes)."""
    repo = make_repo(tmp_path_factory.mktemp("lineage") / "repo", ["gravity", "drag"])
    modules = repo / "modules"
    for name in ("gravity", "drag"):
        _edit(modules / name / "module.yaml", version="1.0.1")
    shutil.copytree(MODULES / "baseball-flight", modules / "baseball-flight")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "lineage fixtures")
    reg = registry.open(repo)
    for name in ("gravity", "drag"):
        reg.register(modules / name)
    pending = reg.store.stage(modules / "baseball-flight")
    assert pending.manifest is not None
    reg.store.commit(pending, pending.manifest)
    return repo, TestClient(create_app(repo))


def test_lineage_links_a_distilled_module_to_its_teacher(site):
    _, client = site
    section = _lineage(client.get("/modules/drag-eq").text)
    assert '<h2 id="lineage">Lineage</h2>' in section
    assert ('<a href="/modules/drag-eq?version=1.0.0" aria-current="page">drag-eq@1.0.0</a>'
            in section)
    teacher = '<a href="/modules/drag-net?version=1.0.0">drag-net@1.0.0</a>'
    assert teacher in section
    # The teacher is nested under the module, as a child entry.
    assert section.index("<ul>") < section.index(teacher)
    text = _text(section)
    assert "drag-eq@1.0.0 equation, distilled" in text
    assert "distilled from drag-net@1.0.0 network, trained" in text
    assert "<script" not in section


def test_lineage_of_a_hand_written_module_is_just_itself(site):
    _, client = site
    section = _lineage(client.get("/modules/gravity", params={"version": "1.0.0"}).text)
    assert '<a href="/modules/gravity?version=1.0.0" aria-current="page">' in section
    assert section.count("<li>") == 1
    assert "hand-written; no parents" in _text(section)


def test_lineage_shows_an_unresolvable_parent_as_text_with_its_reason(site):
    _, client = site
    section = _lineage(client.get("/modules/baseball-flight").text)
    assert ('<a href="/modules/baseball-flight?version=workspace" aria-current="page">'
            in section)
    # The fixture registers drag 1.0.0 only: the pinned 1.0.1 does not resolve.
    assert 'href="/modules/drag?version=1.0.1"' not in section
    text = _text(section)
    assert re.search(r"parent drag@1\.0\.1 not resolvable: \S", text), text


def test_lineage_lists_a_composites_parents_at_their_pinned_versions(flight):
    _, client = flight
    page = client.get("/modules/baseball-flight").text
    section = _lineage(page)
    assert ('<a href="/modules/baseball-flight?version=1.0.1" aria-current="page">'
            'baseball-flight@1.0.1</a>' in section)
    assert '<a href="/modules/drag?version=1.0.1">drag@1.0.1</a>' in section
    assert '<a href="/modules/gravity?version=1.0.1">gravity@1.0.1</a>' in section
    text = _text(section)
    assert "parent drag@1.0.1 equation, hand-written" in text
    assert "parent gravity@1.0.1 equation, hand-written" in text
    assert "not resolvable" not in text
    # The page's other sections are still there.
    assert 'id="composition"' in page and 'id="provenance"' in page


def test_lineage_of_a_module_distilled_from_a_node_of_a_composite(flight):
    repo, client = flight
    folder = repo / "modules" / "flight-drag"
    shutil.copytree(repo / "modules" / "drag", folder)
    _edit(folder / "module.yaml", name="flight-drag", version="1.0.0",
          provenance={"source": "distilled",
                      "distilled_from": "baseball-flight@1.0.1#residual",
                      "recorded": {"sha256": "ab12" * 16, "rows": 960, "calls": 48}})
    registry.open(repo).register(folder)
    section = _lineage(client.get("/modules/flight-drag").text)
    assert ('<a href="/modules/flight-drag?version=1.0.0" aria-current="page">'
            'flight-drag@1.0.0</a>' in section)
    composite = '<a href="/modules/baseball-flight?version=1.0.1">baseball-flight@1.0.1</a>'
    assert composite in section
    text = _text(section)
    assert "distilled from node residual of baseball-flight@1.0.1 composite, composed" in text
    assert "960 rows recorded in 48 calls, sha256 ab12ab12ab12…" in text
    # Below the composite: the parents it pins, linked at their versions.
    assert section.index(composite) < section.index('href="/modules/drag?version=1.0.1"')
    assert '<a href="/modules/gravity?version=1.0.1">gravity@1.0.1</a>' in section


def test_the_list_pages_through_many_modules(site, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 16: at 10k modules the list page shows one page, reading only its manifests."""
    from registry.server import pages

    _, client = site
    monkeypatch.setattr(pages, "PAGE_ROWS", 2)
    first = client.get("/").text
    assert "5 registered modules, page 1 of 3" in _text(first)
    assert 'rel="next" href="/?q=&amp;kind=&amp;page=2"' in first
    assert 'rel="prev"' not in first
    assert "Not registered yet" in _text(first) or "not registered yet" in _text(first)
    seen = []
    for number in (1, 2, 3):
        page = client.get(f"/?page={number}").text
        seen += re.findall(r'<th scope="row"><a href="/modules/([a-z-]+)">', page)
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == 5
    last = client.get("/?page=3").text
    assert 'rel="next"' not in last and "not registered yet" not in _text(last)
    assert "page 3 of 3" in _text(client.get("/?page=99").text)  # clamped
