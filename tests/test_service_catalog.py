"""The Backstage service catalog (``ownership.catalog``): entity refs, and ``backlog policy check``
naming the file, the document and the key of whatever is wrong."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.router.cli import app
from services.router.errors import PolicyInvalid
from services.router.service_catalog import load_catalog, owner_slug

COMPONENT = "kind: Component\nmetadata: {{name: {name}}}\nspec: {{owner: {owner}}}\n"


@pytest.mark.parametrize(("ref", "slug"), [
    ("group:default/team-edge", "team-edge"), ("team-edge", "team-edge"), ("user:alice", "alice"),
    ("default/team.core", "team.core"), ("group:default/Team-Edge", None), ("group:default/", None),
    ("a:b:c", None), ("team edge", None), ("x" * 65, None),
])
def test_an_owner_ref_is_reduced_to_its_name_which_must_be_a_slug(ref: str, slug: str | None) -> None:
    assert owner_slug(ref) == slug


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "catalog").mkdir()
    policy = tmp_path / "policy.yml"
    policy.write_text("ownership:\n  catalog: [catalog/*.yaml, catalog/**/catalog-info.yaml]\n")
    monkeypatch.setenv("REPO_ROOT", str(tmp_path))
    monkeypatch.setenv("BACKLOG_POLICY_PATH", str(policy))
    return tmp_path


def check() -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["policy", "check"])
    return result.exit_code, result.stdout, result.stderr


def test_policy_check_counts_the_catalog_when_it_is_valid(root: Path) -> None:
    (root / "catalog" / "a.yaml").write_text(COMPONENT.format(name="gateway", owner="group:default/team-edge")
                                             + "---\n" + COMPONENT.format(name="auth", owner="team-id") + "---\n")
    (root / "catalog" / "svc").mkdir()
    (root / "catalog" / "svc" / "catalog-info.yaml").write_text(COMPONENT.format(name="search", owner="team-s"))
    code, out, err = check()
    assert code == 0, err
    assert "catalog: 2 file(s) matching catalog/*.yaml, catalog/**/catalog-info.yaml; 3 service owner(s)" in out
    owners = load_catalog(["catalog/*.yaml", "catalog/**/catalog-info.yaml"], root)
    assert {s: o.owner for s, o in owners.items()} == {"gateway": "team-edge", "auth": "team-id", "search": "team-s"}
    assert owners["search"].file == "catalog/svc/catalog-info.yaml"


@pytest.mark.parametrize(("files", "expected"), [
    ({"a.yaml": COMPONENT.format(name="gateway", owner="team-a"),
      "b.yaml": "kind: System\nmetadata: {name: x}\n---\n" + COMPONENT.format(name="gateway", owner="team-b")},
     r"b\.yaml: document 2: metadata\.name: service 'gateway' is already owned by component:default/gateway in "
     r"catalog/a\.yaml \(document 1\)"),
    ({"a.yaml": "kind: System\n---\n" + COMPONENT.format(name="gateway", owner="'group:default/Team Edge'")},
     r"a\.yaml: document 2: spec\.owner: 'group:default/Team Edge' does not name an owner slug"),
    ({"a.yaml": COMPONENT.format(name="gateway", owner="team-a") + "---\nkind: Component\nmetadata: [oops\n"},
     r"a\.yaml: document 2: \(document\): not valid YAML \(line \d+\)"),
    ({"a.yaml": "kind: Component\nmetadata: {name: gateway}\nspec: {type: service}\n"},
     r"a\.yaml: document 1: spec\.owner: a Component needs an owner"),
    ({"a.yaml": "kind: Component\nmetadata:\n  name: Gateway\nspec: {owner: team-a}\n"},
     r"a\.yaml: document 1: metadata\.name: 'Gateway' is not a service slug"),
    ({"a.yaml": "- just\n- a list\n"}, r"a\.yaml: document 1: \(document\): expected a mapping"),
])
def test_policy_check_names_file_document_and_key(root: Path, files: dict[str, str], expected: str) -> None:
    for name, text in files.items():
        (root / "catalog" / name).write_text(text)
    code, _, err = check()
    assert code == 6
    assert err.startswith("error: ") and re.search(expected, err), err
    with pytest.raises(PolicyInvalid):
        load_catalog(["catalog/*.yaml"], root)
    result = CliRunner().invoke(app, ["policy", "check", "--json"])
    assert result.exit_code == 6 and json.loads(result.stdout)["ok"] is False


def test_an_edited_catalog_file_is_read_again(root: Path) -> None:
    path = root / "catalog" / "a.yaml"
    path.write_text(COMPONENT.format(name="gateway", owner="team-a"))
    assert load_catalog(["catalog/*.yaml"], root)["gateway"].owner == "team-a"
    path.write_text(COMPONENT.format(name="gateway", owner="team-bb"))
    assert load_catalog(["catalog/*.yaml"], root)["gateway"].owner == "team-bb"
