"""Dependencies point one way (ARCHITECTURE.md): no import cycle between the project's modules,
imports inside functions included; ``papers`` never imports ``newsletter``; the product never
imports the development tools. Read statically by grimp, so nothing is imported to check.
Imports made only for the type checker (``if TYPE_CHECKING:``) are left out: they never run."""

import graphlib

import grimp
import pytest

PRODUCT = ("config", "papers", "newsletter")
GRAPH = grimp.build_graph(
    *PRODUCT, "devtools", "tests", exclude_type_checking_imports=True, cache_dir=None
)


def test_no_module_of_the_project_imports_itself_through_others() -> None:
    imports = {m: GRAPH.find_modules_directly_imported_by(m) for m in GRAPH.modules}
    try:
        graphlib.TopologicalSorter(imports).prepare()
    except graphlib.CycleError as cycle:
        pytest.fail("import cycle: " + " -> ".join(reversed(cycle.args[1])))


@pytest.mark.parametrize(
    ("importer", "imported"),
    [("papers", "newsletter"), *((package, "devtools") for package in PRODUCT)],
)
def test_dependencies_point_one_way(importer: str, imported: str) -> None:
    chains = GRAPH.find_shortest_chains(importer=importer, imported=imported, as_packages=True)
    assert chains == set(), f"{importer} imports {imported}: {chains}"
