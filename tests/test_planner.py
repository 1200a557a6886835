"""The planner over a directory snapshot: each row's decided outcome or exact request, pure.

No server, no files, no event loop. Every planner and directory is built by `make_planner` and
`make_directory` below, so a change to how they are constructed is made in one place. Tests
call only the per-row planning methods and look at what they return.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pytest

from bulkusers.directory import Directory, Group, Role, User
from bulkusers.identity import identity_key
from bulkusers.intake import Repeats
from bulkusers.journal import JournalEntry
from bulkusers.ledger import Deactivation
from bulkusers.models import FIELDS, Header, Row, RowResult, Status
from bulkusers.planner import Planner
from bulkusers.rules import GroupsMode, OnExisting, PlanOptions, protected_users
from bulkusers.tasks import CreateTask, DeactivateTask, DeleteTask, UpdateTask, WorkItem
from bulkusers.words import speaking_cli
from tests.planning_fixtures import (
    EQUIPE,
    EVERYONE,
    GROUPS,
    LEGACY_ROLES,
    MARKETING,
    ROLES,
    SALES,
    deactivation,
    journal_entry,
    report_line,
    row,
    state,
    user,
)

# -- the one place planners and directories are built ------------------------------------------


def make_directory(users: Iterable[User] = (), *, groups: Iterable[Group] = GROUPS,
                   roles: Iterable[Role] = ROLES) -> Directory:
    """A directory snapshot of these roles, groups and users."""
    return Directory(roles, groups, users)


def make_planner(columns: Sequence[str] = FIELDS, *, users: Iterable[User] = (),
                 groups: Iterable[Group] = GROUPS, roles: Iterable[Role] = ROLES,
                 options: PlanOptions | None = None, me: Mapping[str, Any] | None = None,
                 protected: Mapping[str, str] | None = None,
                 prior: Mapping[int, JournalEntry] | None = None,
                 deactivated: Mapping[str, Deactivation] | None = None,
                 scan: Sequence[Row] = ()) -> Planner:
    """A planner for an input with ``columns`` (canonical field names, in order) over a snapshot
    of ``users``, ``groups`` and ``roles``.

    ``protected`` defaults to what `protected_users` finds (super users, and ``me``: the account
    running the tool). ``prior`` is an interrupted run's undo journal by row, ``deactivated``
    this machine's deactivation records by user id, ``scan`` the whole input (for repeated
    emails).
    """
    header = Header(columns=tuple(columns), index={name: i for i, name in enumerate(columns)})
    directory = make_directory(users, groups=groups, roles=roles)
    found: dict[str, list[int]] = {}
    for line in scan:
        if key := identity_key(header.value(line, "email")):
            found.setdefault(key, []).append(line.number)
    repeats = Repeats({key: tuple(rows) for key, rows in found.items() if len(rows) > 1})
    if protected is None:
        protected = protected_users(directory, me)
    return Planner(header, directory, repeats, options or PlanOptions(), protected,
                   prior=prior, deactivated=deactivated)


# -- helpers that only look at results ---------------------------------------------------------


def decided(item: WorkItem) -> RowResult:
    """The item, which must be an outcome decided while planning (nothing to send)."""
    assert isinstance(item, RowResult), f"expected a decided row, got {item!r}"
    return item


def create(item: WorkItem) -> CreateTask:
    """The item, which must be a create."""
    assert isinstance(item, CreateTask), f"expected a create, got {item!r}"
    return item


def update(item: WorkItem) -> UpdateTask:
    """The item, which must be an update (not a deactivation)."""
    assert type(item) is UpdateTask, f"expected an update, got {item!r}"
    return item


def deactivate(item: WorkItem) -> DeactivateTask:
    """The item, which must be a deactivation."""
    assert isinstance(item, DeactivateTask), f"expected a deactivation, got {item!r}"
    return item


def delete(item: WorkItem) -> DeleteTask:
    """The item, which must be a delete."""
    assert isinstance(item, DeleteTask), f"expected a delete, got {item!r}"
    return item


ANN = user("u-ann", "ann@acme.example", user_name="ann", first_name="Ann", last_name="Lee",
           role_id="r-consumer", group_ids=("g-sales",), language="en-US")
BOSS = user("u-boss", "boss@acme.example", role_id="r-super")
ADMIN = user("u-admin", "it@acme.example", role_id="r-admin", group_ids=("g-sales",))
ME = {"_id": "u-admin", "email": "it@acme.example"}


# -- import: the new user's payload ------------------------------------------------------------


def test_new_user_payload_is_fully_resolved() -> None:
    """A new user: trimmed lower-case email as userName, role and group ids, UI names in changes."""
    item = create(make_planner().plan_import(
        row(2, "  Bob.Stone@Acme.Example ", role="viewer", groups="Sales; Finance")))
    assert item.payload == {"email": "bob.stone@acme.example",
                            "userName": "bob.stone@acme.example", "roleId": "r-consumer",
                            "groups": ["g-sales", "g-finance"]}
    assert item.changes == "role Viewer; groups +Sales +Finance"
    assert (item.email, item.action) == ("bob.stone@acme.example", "create")


def test_email_is_lower_cased_in_ascii_letters_only() -> None:
    """Only ASCII letters are lower-cased: a capital É stays, as a mail system keeps it."""
    item = create(make_planner().plan_import(row(2, "ÉLODIE.Martin@Acme.Example", role="viewer")))
    assert item.payload["email"] == "Élodie.martin@acme.example"


def test_keep_email_case_stores_the_files_spelling() -> None:
    """--keep-email-case creates the address exactly as typed (trimmed)."""
    planner = make_planner(options=PlanOptions(keep_email_case=True))
    item = create(planner.plan_import(row(2, " Bob.Stone@Acme.Example ", role="viewer")))
    assert item.payload["email"] == "Bob.Stone@Acme.Example"
    assert item.payload["userName"] == "Bob.Stone@Acme.Example"


def test_a_recorded_row_keeps_the_servers_spelling() -> None:
    """A row read back from a delete report re-creates the address as the server stored it."""
    item = create(make_planner().plan_import(
        row(2, "Bob.Stone@Acme.Example", role="viewer", recorded=True)))
    assert item.payload["email"] == "Bob.Stone@Acme.Example"


def test_a_given_user_name_is_kept_as_typed() -> None:
    """userName, when given, is sent as typed instead of the email."""
    item = create(make_planner().plan_import(row(2, "bob@acme.example", userName="Bob.Stone",
                                                 role="viewer")))
    assert item.payload["userName"] == "Bob.Stone"


def test_optional_fields_are_sent_only_when_given() -> None:
    """Names, password and language are sent only when their cells hold something."""
    planner = make_planner()
    full = create(planner.plan_import(row(2, "bob@acme.example", firstName="Bob",
                                          lastName="Stone", password="S3cret!x",
                                          language="de-DE", role="viewer")))
    assert (full.payload["firstName"], full.payload["lastName"], full.payload["password"],
            full.payload["preferences"]) == ("Bob", "Stone", "S3cret!x", {"language": "de-DE"})
    bare = create(planner.plan_import(row(3, "cy@acme.example", firstName="(clear)",
                                          role="viewer")))
    assert set(bare.payload) == {"email", "userName", "roleId", "groups"}


def test_a_planned_creates_repr_shows_no_password() -> None:
    """repr() of a create (logged with %r, or in an assertion) holds neither its row's cells
    nor its payload: the new user's initial password is in both."""
    item = create(make_planner().plan_import(row(2, "bob@acme.example", password="S3cret!x",
                                                 role="viewer")))
    assert item.payload["password"] == "S3cret!x"
    assert "S3cret!x" not in repr(item)


@pytest.mark.parametrize(("cell", "role_id"), [
    ("consumer", "r-consumer"), ("Viewer", "r-consumer"), ("VIEWER", "r-consumer"),
    ("r-consumer", "r-consumer"), ("Designer", "r-contributor"),
    ("dashboard designer", "r-contributor"), ("Data Designer", "r-datadesigner"),
    ("data_designer", "r-datadesigner"), ("Sys. Admin", "r-super"),
    ("system administrator", "r-super"), ("administrator", "r-admin"),
])
def test_role_is_found_by_api_name_ui_name_alias_or_id(cell: str, role_id: str) -> None:
    """A role cell names a role by API name, UI name, alias or id, ignoring case and spacing."""
    item = create(make_planner().plan_import(row(2, "bob@acme.example", role=cell)))
    assert item.payload["roleId"] == role_id


def test_ui_role_names_work_on_a_server_without_display_names() -> None:
    """On the legacy API (no displayName) the UI names still resolve and changes use them."""
    planner = make_planner(roles=LEGACY_ROLES)
    item = create(planner.plan_import(row(2, "bob@acme.example", role="Data Designer")))
    assert (item.payload["roleId"], item.changes) == ("r-datadesigner", "role Data Designer")


def test_default_role_fills_a_blank_role_cell_only() -> None:
    """--default-role applies to a blank role cell; a named role wins over it."""
    planner = make_planner(options=PlanOptions(default_role="viewer"))
    assert create(planner.plan_import(row(2, "bob@acme.example"))).payload["roleId"] == \
        "r-consumer"
    assert create(planner.plan_import(row(3, "cy@acme.example", role="admin"))).payload[
        "roleId"] == "r-admin"


def test_no_role_and_no_default_is_skipped_with_the_fix() -> None:
    """A new user without a role is an invalid row that says how to give one: the flag for
    the CLI, the argument for a Python caller."""
    with speaking_cli():
        result = decided(make_planner().plan_import(row(2, "bob@acme.example")))
    assert result.status is Status.SKIPPED
    assert "pass --default-role viewer" in result.error
    from_python = decided(make_planner().plan_import(row(2, "bob@acme.example")))
    assert "pass PlanOptions(default_role='viewer')" in from_python.error


def test_unknown_role_is_skipped_with_a_hint() -> None:
    """A misspelt role is an invalid row naming it and the role that was probably meant."""
    result = decided(make_planner().plan_import(row(2, "bob@acme.example", role="Veiwer")))
    assert result.status is Status.SKIPPED
    assert result.error.startswith("unknown role 'Veiwer'")
    assert "did you mean 'Viewer'" in result.error


def test_unknown_default_role_is_reported_on_the_row() -> None:
    """A --default-role that names no role makes the rows that need it invalid, with a hint."""
    planner = make_planner(options=PlanOptions(default_role="Desiner"))
    result = decided(planner.plan_import(row(2, "bob@acme.example")))
    assert result.status is Status.SKIPPED
    assert "unknown role 'Desiner'" in result.error
    assert "'Designer'" in result.error


# -- import: groups ----------------------------------------------------------------------------


def test_groups_match_ignoring_ascii_case_with_both_separators() -> None:
    """`;` and `|` both separate names, and SALES names Sales."""
    item = create(make_planner().plan_import(
        row(2, "bob@acme.example", role="viewer", groups="SALES | finance;marketing")))
    assert item.payload["groups"] == ["g-sales", "g-finance", "g-marketing"]


def test_group_names_differing_beyond_ascii_case_do_not_match() -> None:
    """équipe is not Équipe (only ASCII case is ignored): unknown, with the real name as hint."""
    planner = make_planner()
    result = decided(planner.plan_import(row(2, "bob@acme.example", role="viewer",
                                             groups="équipe")))
    assert result.status is Status.SKIPPED
    assert "unknown group 'équipe'" in result.error
    assert "'Équipe'" in result.error
    ok = create(planner.plan_import(row(3, "cy@acme.example", role="viewer", groups="Équipe")))
    assert ok.payload["groups"] == [EQUIPE.id]


def test_builtin_groups_are_never_written() -> None:
    """Everyone, Admins and All users in system are accepted in a cell but not sent."""
    item = create(make_planner().plan_import(row(
        2, "bob@acme.example", role="viewer",
        groups="Everyone; Sales; admins | ALL USERS IN SYSTEM")))
    assert item.payload["groups"] == ["g-sales"]
    assert item.changes == "role Viewer; groups +Sales"


def test_each_role_and_groups_combination_gets_its_own_changes_text() -> None:
    """One planner, many creates: the text made once per combination is never another
    combination's (other role, other groups, the same groups in another order, none)."""
    planner = make_planner()
    cases = [("viewer", "Sales", "role Viewer; groups +Sales"),
             ("designer", "Sales", "role Designer; groups +Sales"),
             ("viewer", "Sales; Finance", "role Viewer; groups +Sales +Finance"),
             ("viewer", "Finance; Sales", "role Viewer; groups +Finance +Sales"),
             ("viewer", "", "role Viewer"),
             ("designer", "", "role Designer"),
             ("viewer", "Sales", "role Viewer; groups +Sales")]
    texts = [create(planner.plan_import(row(n, f"u{n}@acme.example", role=role,
                                            groups=groups))).changes
             for n, (role, groups, _) in enumerate(cases * 2, start=2)]
    assert texts == [want for _, _, want in cases * 2]


def test_roles_and_groups_sharing_an_id_keep_their_own_changes_text() -> None:
    """A server that gave two roles, or two groups, one id (an id it left out reads as ""):
    each row's changes text still names its own role and groups."""
    planner = make_planner(roles=[Role("r1", "consumer", "Viewer"),
                                  Role("r1", "contributor", "Designer")],
                           groups=[Group("", "Alpha"), Group("", "Beta")])
    first = create(planner.plan_import(row(2, "a@acme.example", role="viewer",
                                           groups="Alpha")))
    second = create(planner.plan_import(row(3, "b@acme.example", role="designer",
                                            groups="Beta")))
    assert (first.changes, second.changes) == ("role Viewer; groups +Alpha",
                                               "role Designer; groups +Beta")


def test_a_group_repeated_in_a_cell_is_sent_once() -> None:
    """Sales named three times (in any ASCII case) is one membership."""
    item = create(make_planner().plan_import(
        row(2, "bob@acme.example", role="viewer", groups="Sales; sales|SALES ; Finance")))
    assert item.payload["groups"] == ["g-sales", "g-finance"]
    assert item.changes == "role Viewer; groups +Sales +Finance"


def test_a_group_named_by_name_and_by_id_is_sent_once() -> None:
    """Finance named by name and by id is one membership, in a create and an update."""
    planner = make_planner(users=[ANN])
    item = create(planner.plan_import(
        row(2, "bob@acme.example", role="viewer", groups="Finance; g-finance")))
    assert item.payload["groups"] == ["g-finance"]
    changed = update(planner.plan_update(row(3, "ann@acme.example", groups="Finance; g-finance")))
    assert dict(changed.patch) == {"groups": ["g-sales", "g-finance"]}


@pytest.mark.parametrize("cell", [";", " | ; ", "Everyone", "Everyone; Admins"])
def test_a_cell_naming_no_writable_group_creates_without_groups(cell: str) -> None:
    """Separators only, or built-in groups only, name no group: the user is created in none."""
    item = create(make_planner().plan_import(row(2, "bob@acme.example", role="viewer",
                                                 groups=cell)))
    assert item.payload["groups"] == []
    assert item.changes == "role Viewer"


def test_unknown_group_is_skipped_and_suggests_create_groups() -> None:
    """An unknown group makes the row invalid, says how to fix it, and is noted as missing."""
    planner = make_planner()
    with speaking_cli():
        result = decided(planner.plan_import(row(2, "bob@acme.example", role="viewer",
                                                 groups="Sales; Field Ops")))
    assert result.status is Status.SKIPPED
    assert "unknown group 'Field Ops'" in result.error
    assert result.error.endswith("fix the name or pass --create-groups")
    from_python = decided(make_planner().plan_import(row(2, "bob@acme.example", role="viewer",
                                                         groups="Sales; Field Ops")))
    assert from_python.error.endswith("fix the name or pass PlanOptions(create_groups=True)")
    assert planner.missing_groups == {"field ops": "Field Ops"}


def test_create_groups_plans_each_missing_group_once() -> None:
    """--create-groups plans rows naming missing groups, each group once, first spelling kept."""
    planner = make_planner(users=[ANN], options=PlanOptions(create_groups=True))
    first = create(planner.plan_import(row(2, "bob@acme.example", role="viewer",
                                           groups="Sales; Field Ops; legal")))
    second = create(planner.plan_import(row(3, "cy@acme.example", role="viewer",
                                            groups="FIELD OPS")))
    joined = update(planner.plan_update(row(4, "ann@acme.example", groups="Legal")))
    assert first.changes == "role Viewer; groups +Sales +Field Ops +legal"
    assert first.payload["groups"][0] == "g-sales"
    assert second.payload["groups"] == [first.payload["groups"][1]]
    assert list(joined.patch["groups"]) == ["g-sales", first.payload["groups"][2]]
    assert joined.changes == "groups: +legal"
    assert planner.new_groups() == ("Field Ops", "legal")
    assert planner.missing_groups == {"field ops": "Field Ops", "legal": "legal"}


# -- import: the (clear) rules -----------------------------------------------------------------


def test_clear_alone_in_groups_creates_without_groups() -> None:
    """(clear), in any case, empties the groups: a new user gets none."""
    item = create(make_planner().plan_import(row(2, "bob@acme.example", role="viewer",
                                                 groups=" (CLEAR) ")))
    assert item.payload["groups"] == []


@pytest.mark.parametrize("cell", ["(clear);", "; (clear) |"])
def test_clear_beside_separators_only_is_clear_alone(cell: str) -> None:
    """Separators name no group, so (clear) with stray separators still empties the groups."""
    item = update(make_planner(users=[ANN]).plan_update(row(2, "ann@acme.example",
                                                            groups=cell)))
    assert dict(item.patch) == {"groups": []}


def test_clear_beside_group_names_is_invalid() -> None:
    """(clear) with group names is ambiguous: the row is invalid and says what to do."""
    result = decided(make_planner().plan_import(row(2, "bob@acme.example", role="viewer",
                                                    groups="Sales; (clear)")))
    assert result.status is Status.SKIPPED
    assert "(clear) must be alone in the groups cell" in result.error


def test_role_cannot_be_cleared() -> None:
    """(clear) in the role column is an invalid row, in import and update alike."""
    planner = make_planner(users=[ANN])
    for item in (planner.plan_import(row(2, "bob@acme.example", role="(clear)")),
                 planner.plan_update(row(3, "ann@acme.example", role="(clear)"))):
        result = decided(item)
        assert result.status is Status.SKIPPED
        assert "the role cannot be cleared" in result.error


def test_user_name_cannot_be_cleared() -> None:
    """(clear) in the userName column is an invalid row, in import and update alike."""
    planner = make_planner(users=[ANN])
    for item in (planner.plan_import(row(2, "bob@acme.example", role="viewer",
                                         userName="(clear)")),
                 planner.plan_update(row(3, "ann@acme.example", userName="(Clear)"))):
        result = decided(item)
        assert result.status is Status.SKIPPED
        assert "the userName cannot be cleared" in result.error


# -- import: who the row names -----------------------------------------------------------------


@pytest.mark.parametrize(("cell", "reason"), [
    ("", "no email"),
    ("bob.acme.example", "malformed email 'bob.acme.example'"),
    ("bob..stone@acme.example", "malformed email"),
    ("bob stone@acme.example", "malformed email"),
    ("bob@a.c", "malformed email"),
    ("bo\u200bb@acme.example", "invisible character"),
    ("bob\u00ad@acme.example", "invisible character"),
    ("\u200ebob@acme.example", "invisible character"),
])
def test_invalid_email_is_skipped_with_the_reason(cell: str, reason: str) -> None:
    """A missing, malformed or look-alike (invisible character) email makes the row invalid."""
    result = decided(make_planner().plan_import(row(2, cell, role="viewer")))
    assert result.status is Status.SKIPPED
    assert reason in result.error


@pytest.mark.parametrize("cell", ["\ufeffann@acme.example", "ann@acme.example\u200b ",
                                  "\tANN@acme.example "])
def test_invisible_characters_around_an_address_are_trimmed(cell: str) -> None:
    """A byte-order mark, zero-width space or tab around an address does not hide its user."""
    planner = make_planner(users=[ANN])
    assert decided(planner.plan_import(row(2, cell))).user_id == "u-ann"
    assert delete(planner.plan_delete(row(3, cell))).user.id == "u-ann"


def test_an_address_without_a_top_level_domain_is_accepted() -> None:
    """jane@corp is a valid Sisense address."""
    assert create(make_planner().plan_import(row(2, "jane@corp", role="viewer"))).payload[
        "email"] == "jane@corp"


def test_a_row_with_a_reading_problem_is_skipped_with_it() -> None:
    """A row the reader judged unusable is skipped with that reason, even for a known user."""
    planner = make_planner(users=[ANN])
    for item in (planner.plan_import(row(2, "bob@acme.example", role="viewer",
                                         problem="control character in groups")),
                 planner.plan_delete(row(3, "ann@acme.example",
                                         problem="control character in groups"))):
        result = decided(item)
        assert (result.status, result.error) == (Status.SKIPPED, "control character in groups")


def test_a_row_refused_for_itself_still_names_the_user_it_finds() -> None:
    """A row the reader judged unusable, for an existing user spelt in another case, names
    that user as stored, with their id and the action it had in store (update under
    --on-existing update), as a repeated email's rows do."""
    planner = make_planner(users=[ANN], options=PlanOptions(on_existing="update"))
    result = decided(planner.plan_import(row(2, "ANN@Acme.example", role="viewer",
                                             problem="control character in groups")))
    assert (result.action, result.email, result.user_id, result.error) == (
        "update", ANN.email, ANN.id, "control character in groups")


def test_a_repeated_email_makes_every_one_of_its_rows_invalid() -> None:
    """Every row of a repeated email (ASCII case aside) is skipped, naming the other rows."""
    rows = [row(2, "bob@acme.example", role="viewer"), row(3, "cy@acme.example", role="viewer"),
            row(4, "BOB@acme.example", role="admin"), row(5, " Bob@Acme.Example", role="viewer")]
    planner = make_planner(scan=rows)
    results = [planner.plan_import(r) for r in rows]
    assert decided(results[0]).error == "email also on row 4, 5; keep one row per user"
    assert decided(results[2]).error == "email also on row 2, 5; keep one row per user"
    assert decided(results[3]).error == "email also on row 2, 4; keep one row per user"
    assert create(results[1]).email == "cy@acme.example"


@pytest.mark.parametrize(("on_existing", "action"),
                         [("update", "update"), ("skip", "create"), ("fail", "create")])
def test_the_refused_rows_of_an_existing_users_repeated_email_name_that_user(
        on_existing: OnExisting, action: str) -> None:
    """Rows repeating an existing user's email in other letter cases are refused with the
    action they had in store for that user (update, under --on-existing update), naming
    the user as stored, with their id; a new user's repeated rows stay creates."""
    rows = [row(2, "ANN@acme.example", role="viewer"), row(3, "ann@ACME.example", role="admin"),
            row(4, "new@acme.example", role="viewer"), row(5, "NEW@acme.example")]
    planner = make_planner(users=[ANN], scan=rows,
                           options=PlanOptions(on_existing=on_existing))
    results = [decided(planner.plan_import(r)) for r in rows]
    assert [(r.action, r.email, r.user_id, r.status) for r in results] == [
        (action, ANN.email, ANN.id, Status.SKIPPED), (action, ANN.email, ANN.id, Status.SKIPPED),
        ("create", "new@acme.example", "", Status.SKIPPED),
        ("create", "NEW@acme.example", "", Status.SKIPPED)]
    assert results[0].error == "email also on row 3; keep one row per user"


def test_an_update_of_a_repeated_email_names_the_user_as_stored() -> None:
    """update: the refused rows of a repeated email name the existing user as stored."""
    rows = [row(2, "ANN@acme.example", role="viewer"), row(3, "Ann@acme.example")]
    planner = make_planner(users=[ANN], scan=rows)
    results = [decided(planner.plan_update(r)) for r in rows]
    assert {(r.action, r.email, r.user_id) for r in results} == {("update", ANN.email, ANN.id)}


def test_addresses_differing_beyond_ascii_case_are_not_repeats() -> None:
    """straße@ and strasse@ are two mailboxes: both rows are planned."""
    rows = [row(2, "straße@acme.example", role="viewer"),
            row(3, "strasse@acme.example", role="viewer")]
    planner = make_planner(scan=rows)
    assert [create(planner.plan_import(r)).email for r in rows] == [
        "straße@acme.example", "strasse@acme.example"]


def test_an_existing_user_is_skipped_by_default() -> None:
    """--on-existing skip: an existing user is already there, named as stored, row unchecked."""
    result = decided(make_planner(users=[ANN]).plan_import(
        row(2, "ANN@acme.example", role="no such role")))
    assert (result.status, result.changes, result.user_id, result.email, result.error) == (
        Status.SKIPPED, "none: user already exists", "u-ann", "ann@acme.example", "")


def test_an_existing_user_fails_with_on_existing_fail() -> None:
    """--on-existing fail: an existing user is a failed row, whose error names the setting
    as the reader gave it (the flag on the command line, the argument from Python)."""
    planner = make_planner(users=[ANN], options=PlanOptions(on_existing="fail"))
    result = decided(planner.plan_import(row(2, "ann@acme.example", role="viewer")))
    assert (result.status, result.user_id) == (Status.FAILED, "u-ann")
    assert result.error == "user already exists (PlanOptions(on_existing='fail'))"
    with speaking_cli():
        result = decided(planner.plan_import(row(3, "ann@acme.example", role="viewer")))
    assert result.error == "user already exists (--on-existing fail)"


def test_an_existing_user_is_updated_with_on_existing_update() -> None:
    """--on-existing update: an existing user gets an update of what differs (an upsert)."""
    planner = make_planner(users=[ANN], options=PlanOptions(on_existing="update"))
    item = update(planner.plan_import(row(2, "ann@acme.example", role="designer")))
    assert (item.action, dict(item.patch)) == ("update", {"roleId": "r-contributor"})


def test_a_user_name_held_by_another_user_is_refused() -> None:
    """A new user cannot take another user's userName, typed or defaulted from the email."""
    holder = user("u-x", "x@acme.example", user_name="bob@acme.example")
    planner = make_planner(users=[ANN, holder])
    typed = decided(planner.plan_import(row(2, "bob2@acme.example", userName="ANN",
                                            role="viewer")))
    assert typed.error == "userName 'ANN' is taken by ann@acme.example"
    defaulted = decided(planner.plan_import(row(3, "bob@acme.example", role="viewer")))
    assert defaulted.error == "userName 'bob@acme.example' is taken by x@acme.example"


def test_two_rows_asking_for_one_user_name_conflict_while_planning() -> None:
    """A userName (typed or defaulted from the email) an earlier row will hold is refused on a
    later row, in a create or an update, naming the earlier row's user."""
    rows = [row(2, "bob@acme.example", userName="bob", role="viewer"),
            row(3, "bobby@acme.example", userName="Bob", role="viewer"),
            row(4, "cy@acme.example", role="viewer"),
            row(5, "ann@acme.example", userName="CY@acme.example")]
    planner = make_planner(users=[ANN], scan=rows)
    items = [planner.plan_import(rows[0]), planner.plan_import(rows[1]),
             planner.plan_import(rows[2]), planner.plan_update(rows[3])]
    assert create(items[0]).payload["userName"] == "bob"
    assert decided(items[1]).error == \
        "userName 'Bob' is also wanted by bob@acme.example on an earlier row"
    assert create(items[2]).payload["userName"] == "cy@acme.example"
    assert decided(items[3]).error == \
        "userName 'CY@acme.example' is also wanted by cy@acme.example on an earlier row"


@pytest.mark.parametrize(("on_existing", "refused"), [
    ("skip", row(2, "bob@acme.example", userName="chief")),  # a new user without a role
    ("update", row(2, "boss@acme.example", userName="chief", role="viewer")),  # a super user
])
def test_a_refused_row_does_not_hold_its_user_name(on_existing: OnExisting, refused: Row) -> None:
    """A row that will not be sent leaves its userName free for a later row."""
    later = row(3, "carl@acme.example", userName="chief", role="viewer")
    planner = make_planner(users=[BOSS], scan=[refused, later],
                           options=PlanOptions(on_existing=on_existing))
    assert decided(planner.plan_import(refused)).status is Status.SKIPPED
    assert create(planner.plan_import(later)).payload["userName"] == "chief"


# -- update ------------------------------------------------------------------------------------


def test_update_sends_only_the_fields_that_differ() -> None:
    """Only differing fields are patched; changes show old -> new; previous names, not ids."""
    item = update(make_planner(users=[ANN]).plan_update(
        row(2, "ann@acme.example", firstName="Annie", lastName="Lee", role="Viewer",
            groups="Sales", language="en-US")))
    assert dict(item.patch) == {"firstName": "Annie"}
    assert item.changes == "firstName: 'Ann' -> 'Annie'"
    assert json.loads(item.previous) == {
        "id": "u-ann", "email": "ann@acme.example", "userName": "ann", "firstName": "Ann",
        "lastName": "Lee", "role": "consumer", "groups": ["Sales"], "language": "en-US"}


def test_the_previous_state_of_any_stored_name_reads_back_with_no_raw_control() -> None:
    """A stored name with a lone surrogate or a DEL is recorded as JSON that reads back exactly."""
    for first in ("Ann\ud800", "Ann"):  # orjson refuses the first: json's way, then orjson's
        odd = user("u-odd", "odd@acme.example", first_name=first, last_name="Del\x7fLee")
        item = update(make_planner(users=[odd]).plan_update(
            row(2, "odd@acme.example", firstName="Annie")))
        previous = json.loads(item.previous)
        assert (previous["firstName"], previous["lastName"]) == (first, "Del\x7fLee")
        assert "\x7f" not in item.previous


def test_a_user_that_already_matches_is_unchanged() -> None:
    """A row equal to the user, or of blank cells only, sends nothing."""
    planner = make_planner(users=[ANN])
    for same in (row(2, "ann@acme.example", firstName="Ann", role="consumer", groups="sales"),
                 row(3, "ann@acme.example")):
        result = decided(planner.plan_update(same))
        assert (result.status, result.user_id) == (Status.UNCHANGED, "u-ann")


def test_an_email_case_difference_fixes_the_stored_address() -> None:
    """A case-only email difference fixes the stored address (lower, or as typed if kept)."""
    jane = user("u-jane", "Jane.Doe@Corp.com")
    item = update(make_planner(users=[jane]).plan_update(row(2, "JANE.DOE@corp.com")))
    assert dict(item.patch) == {"email": "jane.doe@corp.com"}
    assert item.changes == "email: 'Jane.Doe@Corp.com' -> 'jane.doe@corp.com'"
    kept = make_planner(users=[jane], options=PlanOptions(keep_email_case=True))
    assert dict(update(kept.plan_update(row(2, "JANE.DOE@corp.com"))).patch) == {
        "email": "JANE.DOE@corp.com"}
    assert decided(kept.plan_update(row(3, "Jane.Doe@Corp.com"))).status is Status.UNCHANGED


def test_a_role_change_is_named_as_the_ui_names_it() -> None:
    """role: Viewer -> Data Designer, and the patch carries the new role's id."""
    item = update(make_planner(users=[ANN]).plan_update(row(2, "ann@acme.example",
                                                            role="dataDesigner")))
    assert dict(item.patch) == {"roleId": "r-datadesigner"}
    assert item.changes == "role: Viewer -> Data Designer"


def test_groups_add_mode_adds_to_the_current_groups() -> None:
    """--groups add (default): named groups join the current ones; held ones are not re-sent."""
    planner = make_planner(users=[ANN])
    item = update(planner.plan_update(row(2, "ann@acme.example", groups="Finance; Sales")))
    assert dict(item.patch) == {"groups": ["g-sales", "g-finance"]}
    assert item.changes == "groups: +Finance"


def test_groups_replace_mode_sets_exactly_the_named_groups() -> None:
    """--groups replace: membership becomes the named groups; removals are listed."""
    planner = make_planner(users=[ANN], options=PlanOptions(groups_mode="replace"))
    item = update(planner.plan_update(row(2, "ann@acme.example", groups="Finance")))
    assert dict(item.patch) == {"groups": ["g-finance"]}
    assert item.changes == "groups: +Finance -Sales"
    same = planner.plan_update(row(3, "ann@acme.example", groups="SALES"))
    assert decided(same).status is Status.UNCHANGED


@pytest.mark.parametrize("mode", ["add", "replace"])
@pytest.mark.parametrize("cell", [";", " | ", "Everyone", "Admins; All users in system"])
def test_a_cell_naming_no_writable_group_leaves_groups_alone(cell: str,
                                                            mode: GroupsMode) -> None:
    """Separators only or built-in groups only look blank: the groups stay, in either mode."""
    planner = make_planner(users=[ANN], options=PlanOptions(groups_mode=mode))
    result = decided(planner.plan_update(row(2, "ann@acme.example", groups=cell)))
    assert result.status is Status.UNCHANGED


def test_clear_removes_every_group_but_keeps_builtin_ones_out_of_it() -> None:
    """(clear) removes every written group, even in add mode; built-in ones are not listed."""
    held = user("u-gus", "gus@acme.example", group_ids=("g-everyone", "g-sales", "g-finance"))
    item = update(make_planner(users=[held]).plan_update(row(2, "gus@acme.example",
                                                              groups="(clear)")))
    assert dict(item.patch) == {"groups": []}
    assert item.changes == "groups: -Sales -Finance"


def test_builtin_memberships_are_not_sent_when_groups_are_added() -> None:
    """A user listed in Everyone keeps it out of the patch when a group is added."""
    held = user("u-gus", "gus@acme.example", group_ids=(EVERYONE.id, SALES.id))
    item = update(make_planner(users=[held]).plan_update(row(2, "gus@acme.example",
                                                              groups="Marketing")))
    assert dict(item.patch) == {"groups": [SALES.id, MARKETING.id]}


def test_clear_empties_names_and_language() -> None:
    """(clear) empties first name and language; the language is sent as null."""
    item = update(make_planner(users=[ANN]).plan_update(
        row(2, "ann@acme.example", firstName="(clear)", language="(clear)")))
    assert dict(item.patch) == {"firstName": "", "preferences": {"language": None}}
    assert item.changes == "firstName: 'Ann' -> ''; language: 'en-US' -> ''"


def test_a_language_change_is_sent_in_preferences() -> None:
    """A new language goes in preferences.language."""
    item = update(make_planner(users=[ANN]).plan_update(row(2, "ann@acme.example",
                                                            language="fr-FR")))
    assert dict(item.patch) == {"preferences": {"language": "fr-FR"}}
    assert item.changes == "language: 'en-US' -> 'fr-FR'"


def test_a_protected_users_role_is_never_changed() -> None:
    """Protected users' roles are never changed; their other fields still are."""
    planner = make_planner(users=[BOSS, ADMIN], me=ME)
    for email, reason in (("boss@acme.example", "the super user boss@acme.example"),
                          ("it@acme.example", "the account running bulkusers")):
        refused = decided(planner.plan_update(row(2, email, role="viewer")))
        assert refused.status is Status.SKIPPED
        assert refused.error.startswith(f"refusing to change the role of {reason}")
    named = update(planner.plan_update(row(3, "boss@acme.example", firstName="Big")))
    assert dict(named.patch) == {"firstName": "Big"}


def test_a_protected_user_naming_its_own_role_is_unchanged() -> None:
    """A full HR list naming the super user's own role (by any name) is not a role change."""
    planner = make_planner(users=[BOSS], me=ME)
    for number, cell in enumerate(("super", "Sys. Admin", "sysadmin", "r-super"), start=2):
        result = decided(planner.plan_update(row(number, "boss@acme.example", role=cell)))
        assert (result.status, result.error) == (Status.UNCHANGED, "")


def test_upsert_of_a_matching_user_is_unchanged() -> None:
    """import --on-existing update of a user that already matches sends nothing."""
    planner = make_planner(users=[ANN], options=PlanOptions(on_existing="update"))
    result = decided(planner.plan_import(row(2, "ann@acme.example", role="Viewer",
                                             groups="Sales", firstName="Ann")))
    assert (result.status, result.action, result.user_id) == (Status.UNCHANGED, "update",
                                                              "u-ann")


def test_update_of_an_unknown_user_fails() -> None:
    """An email no user has is a failed update that points to import."""
    result = decided(make_planner(users=[ANN]).plan_update(row(2, "nobody@acme.example",
                                                               role="viewer")))
    assert result.status is Status.FAILED
    assert "use import" in result.error


def test_update_to_a_user_name_held_by_another_user_is_refused() -> None:
    """A userName another user holds is refused; the user's own name in other case is a fix."""
    planner = make_planner(users=[ANN, ADMIN])
    taken = decided(planner.plan_update(row(2, "ann@acme.example",
                                            userName="IT@acme.example")))
    assert (taken.status, taken.user_id) == (Status.SKIPPED, "u-ann")
    assert taken.error == "userName 'IT@acme.example' is taken by it@acme.example"
    own = update(planner.plan_update(row(3, "ann@acme.example", userName="Ann")))
    assert dict(own.patch) == {"userName": "Ann"}


def test_an_invalid_update_names_the_user() -> None:
    """An unknown group on an existing user's row is skipped with the user's id."""
    result = decided(make_planner(users=[ANN]).plan_update(row(2, "ann@acme.example",
                                                               groups="Nope")))
    assert (result.status, result.user_id) == (Status.SKIPPED, "u-ann")
    assert "unknown group 'Nope'" in result.error


# -- deactivate --------------------------------------------------------------------------------


def test_deactivation_is_viewer_no_groups_and_a_new_password() -> None:
    """Deactivation: Viewer, no groups, new password; the record keeps role and group names."""
    held = user("u-gus", "gus@acme.example", role_id="r-admin",
                group_ids=("g-everyone", "g-sales", "g-finance"))
    item = deactivate(make_planner(users=[held]).plan_deactivate(row(2, "GUS@acme.example")))
    assert dict(item.patch) == {"roleId": "r-consumer", "groups": [], "password": "<random>"}
    assert item.changes == "role: Admin -> Viewer; groups: -Sales -Finance; password replaced"
    assert (item.email, item.action, item.user.id) == ("gus@acme.example", "deactivate", "u-gus")
    previous = json.loads(item.previous)
    assert (previous["role"], previous["groups"]) == ("admin", ["Sales", "Finance"])


def test_a_bare_viewer_without_a_record_still_gets_a_new_password() -> None:
    """A Viewer in no group, never deactivated by bulkusers, is still locked out."""
    bare = user("u-v", "v@acme.example")
    item = deactivate(make_planner(users=[bare]).plan_deactivate(row(2, "v@acme.example")))
    assert item.changes == "password replaced"


@pytest.mark.parametrize("plan", ["deactivate", "delete"])
def test_protected_users_are_never_deactivated_or_deleted(plan: str) -> None:
    """The super user and the account running the tool are refused with the reason."""
    planner = make_planner(users=[BOSS, ADMIN, ANN], me=ME)
    method = planner.plan_deactivate if plan == "deactivate" else planner.plan_delete
    boss = decided(method(row(2, "boss@acme.example")))
    me = decided(method(row(3, "it@acme.example")))
    assert (boss.status, boss.user_id) == (Status.SKIPPED, "u-boss")
    assert boss.error == f"refusing to {plan} the super user boss@acme.example"
    assert me.error == f"refusing to {plan} the account running bulkusers (it@acme.example)"
    assert not isinstance(method(row(4, "ann@acme.example")), RowResult)


@pytest.mark.parametrize("plan", ["deactivate", "delete"])
def test_an_unknown_user_is_skipped(plan: str) -> None:
    """An email no user has is skipped with the reason, nothing sent."""
    planner = make_planner(users=[ANN])
    method = planner.plan_deactivate if plan == "deactivate" else planner.plan_delete
    result = decided(method(row(2, "nobody@acme.example")))
    assert (result.status, result.error) == (Status.SKIPPED, "no user with this email")


def test_a_repeated_email_is_not_deactivated() -> None:
    """Repeated emails make deactivate rows invalid as they do import rows."""
    rows = [row(2, "ann@acme.example"), row(3, "Ann@acme.example")]
    planner = make_planner(users=[ANN], scan=rows)
    assert decided(planner.plan_deactivate(rows[0])).error.startswith("email also on row 3")


def test_a_user_still_deactivated_per_the_record_is_unchanged() -> None:
    """A user still deactivated per a done record is unchanged, carrying that record forward."""
    shell = user("u-gus", "gus@acme.example", group_ids=("g-everyone",))
    before = state(role="admin", groups=["Sales"])
    planner = make_planner(users=[shell],
                           deactivated={"u-gus": deactivation("u-gus", "gus@acme.example",
                                                              before)})
    result = decided(planner.plan_deactivate(row(2, "gus@acme.example")))
    assert (result.status, result.previous, result.user_id) == (Status.UNCHANGED, before,
                                                                "u-gus")
    assert "already deactivated by bulkusers on 2026-11-28 10:15 UTC" in result.changes


def test_an_unfinished_deactivation_is_sent_again_keeping_its_record() -> None:
    """A pending record (the attempt never finished) is sent again with the first record."""
    shell = user("u-gus", "gus@acme.example")
    before = state(role="admin", groups=["Sales"])
    planner = make_planner(users=[shell], deactivated={
        "u-gus": deactivation("u-gus", "gus@acme.example", before, "pending")})
    item = deactivate(planner.plan_deactivate(row(2, "gus@acme.example")))
    assert item.previous == before


@pytest.mark.parametrize(("role_id", "group_ids", "role", "groups"), [
    ("r-contributor", (), "contributor", []),
    ("r-consumer", ("g-everyone", "g-finance"), "consumer", ["Finance"]),
])
def test_a_user_given_access_again_is_deactivated_afresh(role_id: str, group_ids: tuple[str, ...],
                                                         role: str, groups: list[str]) -> None:
    """A recorded user given a role or group again is deactivated afresh, recording it now."""
    again = user("u-gus", "gus@acme.example", role_id=role_id, group_ids=group_ids)
    planner = make_planner(users=[again], deactivated={
        "u-gus": deactivation("u-gus", "gus@acme.example", state(role="admin", groups=[]))})
    item = deactivate(planner.plan_deactivate(row(2, "gus@acme.example")))
    previous = json.loads(item.previous)
    assert (previous["role"], previous["groups"]) == (role, groups)


def test_a_resumed_deactivation_keeps_the_interrupted_attempts_record() -> None:
    """A resumed deactivation keeps the journal's state over the shell and the ledger record."""
    shell = user("u-gus", "gus@acme.example")
    first = state(role="admin", groups=["Sales", "Finance"])
    planner = make_planner(
        users=[shell], prior={2: journal_entry(2, "GUS@acme.example", "u-gus", "deactivate",
                                               first)},
        deactivated={"u-gus": deactivation("u-gus", "gus@acme.example", state(role="x"))})
    assert deactivate(planner.plan_deactivate(row(2, "gus@acme.example"))).previous == first


@pytest.mark.parametrize("entry", [
    journal_entry(2, "other@acme.example", "u-o", "deactivate", '{"role": "admin"}'),
    journal_entry(2, "gus@acme.example", "u-gus", "delete", '{"role": "admin"}'),
    journal_entry(3, "gus@acme.example", "u-gus", "deactivate", '{"role": "admin"}'),
])
def test_a_journal_entry_of_another_row_email_or_action_is_ignored(entry: JournalEntry) -> None:
    """Only the entry of the same row, email and action is this row's earlier attempt."""
    held = user("u-gus", "gus@acme.example", role_id="r-contributor")
    planner = make_planner(users=[held], prior={entry.row: entry})
    previous = json.loads(deactivate(planner.plan_deactivate(row(2, "gus@acme.example")))
                          .previous)
    assert previous["role"] == "contributor"


def test_deactivate_fails_on_a_server_without_a_viewer_role() -> None:
    """Without a consumer role there is nothing to demote to: failed, nothing sent."""
    roles = [r for r in ROLES if r.name != "consumer"]
    held = user("u-gus", "gus@acme.example", role_id="r-admin")
    result = decided(make_planner(users=[held], roles=roles).plan_deactivate(
        row(2, "gus@acme.example")))
    assert result.status is Status.FAILED
    assert "Viewer" in result.error


# -- delete ------------------------------------------------------------------------------------


def test_delete_records_the_users_full_state() -> None:
    """The delete's previous holds everything import needs to re-create the user."""
    item = delete(make_planner(users=[ANN]).plan_delete(row(2, "Ann@Acme.example")))
    assert (item.email, item.user.id, item.action) == ("ann@acme.example", "u-ann", "delete")
    assert json.loads(item.previous) == {
        "id": "u-ann", "email": "ann@acme.example", "userName": "ann", "firstName": "Ann",
        "lastName": "Lee", "role": "consumer", "groups": ["Sales"], "language": "en-US"}


def test_deleting_a_deactivated_user_records_its_state_before() -> None:
    """A user bulkusers deactivated is recorded as it was before, not as the Viewer shell."""
    shell = user("u-gus", "gus@acme.example")
    before = state(role="admin", groups=["Sales"])
    planner = make_planner(users=[shell], deactivated={
        "u-gus": deactivation("u-gus", "gus@acme.example", before)})
    assert delete(planner.plan_delete(row(2, "gus@acme.example"))).previous == before


def test_a_delete_the_interrupted_run_sent_is_confirmed() -> None:
    """With this row's journal entry and the user gone, the row is deleted, with its record."""
    entry = journal_entry(2, "gus@acme.example", "u-gus", "delete", state(role="admin"))
    result = decided(make_planner(prior={2: entry}).plan_delete(row(2, "Gus@acme.example")))
    assert (result.status, result.user_id, result.previous) == (Status.DELETED, "u-gus",
                                                                entry.previous)
    assert "confirmed" in result.changes


def test_a_delete_the_interrupted_run_did_not_finish_is_sent() -> None:
    """With this row's journal entry but the user still there, the delete is planned again."""
    entry = journal_entry(2, "ann@acme.example", "u-ann", "delete", state(role="consumer"))
    item = delete(make_planner(users=[ANN], prior={2: entry}).plan_delete(
        row(2, "ann@acme.example")))
    assert item.user.id == "u-ann"


# -- reactivate --------------------------------------------------------------------------------


def test_reactivate_gives_the_recorded_role_and_groups_back() -> None:
    """A deactivated user gets its recorded role and groups (built-in ones ignored) back."""
    shell = user("u-gus", "gus@acme.example", group_ids=("g-everyone",))
    line = report_line(2, "gus@acme.example", "u-gus",
                       previous={"role": "admin", "groups": ["Sales", "Everyone", "finance"]})
    item = update(make_planner(users=[shell]).plan_reactivate(line))
    assert item.action == "reactivate"
    assert dict(item.patch) == {"roleId": "r-admin", "groups": ["g-sales", "g-finance"]}
    assert item.changes == "role: Viewer -> Admin; groups: +Sales +Finance"
    assert json.loads(item.previous)["role"] == "consumer"


def test_reactivate_works_from_a_line_that_found_the_user_already_deactivated() -> None:
    """An 'unchanged' deactivate line carries the first record, so it restores too."""
    shell = user("u-gus", "gus@acme.example")
    line = report_line(2, "gus@acme.example", "u-gus", status="unchanged",
                       previous={"role": "contributor", "groups": ["Marketing"]})
    item = update(make_planner(users=[shell]).plan_reactivate(line))
    assert dict(item.patch) == {"roleId": "r-contributor", "groups": ["g-marketing"]}


def test_reactivate_replaces_groups_given_since() -> None:
    """Groups the user holds now but not in the record are removed."""
    now = user("u-gus", "gus@acme.example", role_id="r-admin", group_ids=("g-marketing",))
    line = report_line(2, "gus@acme.example", "u-gus",
                       previous={"role": "admin", "groups": ["Sales"]})
    item = update(make_planner(users=[now]).plan_reactivate(line))
    assert (dict(item.patch), item.changes) == ({"groups": ["g-sales"]},
                                                "groups: +Sales -Marketing")


def test_reactivate_of_a_user_already_restored_is_unchanged() -> None:
    """A user that already holds the recorded role and groups needs nothing."""
    line = report_line(2, "ann@acme.example", "u-ann",
                       previous={"role": "consumer", "groups": ["Sales"]})
    result = decided(make_planner(users=[ANN]).plan_reactivate(line))
    assert (result.status, result.user_id, result.action) == (Status.UNCHANGED, "u-ann",
                                                              "reactivate")


def test_reactivate_finds_a_user_by_email_when_its_id_changed() -> None:
    """A user whose id is not the recorded one is found by the recorded email."""
    line = report_line(2, "ANN@acme.example", "u-old",
                       previous={"role": "admin", "groups": ["Sales"]})
    assert update(make_planner(users=[ANN]).plan_reactivate(line)).user.id == "u-ann"


def test_reactivate_of_a_user_gone_fails() -> None:
    """A deactivated user deleted since cannot be reactivated: failed, pointing to import."""
    line = report_line(2, "gus@acme.example", "u-gus", previous={"role": "admin"})
    result = decided(make_planner(users=[ANN]).plan_reactivate(line))
    assert result.status is Status.FAILED
    assert "re-create it with import" in result.error


@pytest.mark.parametrize(("previous", "reason"), [
    ({"role": "wizard", "groups": []}, "recorded role: unknown role 'wizard'"),
    ({"groups": []}, "recorded role: unknown role"),
    ({"role": "admin", "groups": ["Sales", "Gone Team"]},
     "recorded groups: unknown group 'Gone Team'"),
])
def test_reactivate_with_a_record_the_server_cannot_honour_fails(previous: dict[str, Any],
                                                                 reason: str) -> None:
    """A recorded role or group the server no longer has fails the row, naming it."""
    shell = user("u-gus", "gus@acme.example")
    line = report_line(2, "gus@acme.example", "u-gus", previous=previous)
    result = decided(make_planner(users=[shell]).plan_reactivate(line))
    assert (result.status, result.user_id) == (Status.FAILED, "u-gus")
    assert result.error.startswith(reason)


@pytest.mark.parametrize(("action", "status", "previous"), [
    ("update", "updated", {"role": "admin"}),
    ("delete", "deleted", {"role": "admin"}),
    ("deactivate", "skipped", {}),
])
def test_a_line_that_did_not_deactivate_is_skipped(action: str, status: str,
                                                   previous: dict[str, Any]) -> None:
    """Only a deactivation with a record is reactivated; other lines are skipped quietly."""
    line = report_line(2, "ann@acme.example", "u-ann", action=action, status=status,
                       previous=previous)
    result = decided(make_planner(users=[ANN]).plan_reactivate(line))
    assert (result.status, result.error) == (Status.SKIPPED, "")
    assert result.changes == "none: that run did not deactivate this user"


# -- protected_users ---------------------------------------------------------------------------


def test_protected_users_are_super_users_and_the_running_account() -> None:
    """Every super user is protected, and the account in use with its own reason."""
    other_super = user("u-boss2", "boss2@acme.example", role_id="r-super")
    directory = make_directory([BOSS, other_super, ADMIN, ANN])
    assert protected_users(directory, ME) == {
        "u-boss": "the super user boss@acme.example",
        "u-boss2": "the super user boss2@acme.example",
        "u-admin": "the account running bulkusers (it@acme.example)"}


def test_a_super_user_running_the_tool_has_both_reasons() -> None:
    """A super user running the tool is named as both."""
    found = protected_users(make_directory([BOSS]), {"_id": "u-boss",
                                                     "email": "boss@acme.example"})
    assert found == {"u-boss": "the super user boss@acme.example, the account running "
                               "bulkusers (boss@acme.example)"}


def test_without_a_known_account_only_super_users_are_protected() -> None:
    """No running account (or one without an id) adds nothing; no super role, no super user."""
    assert protected_users(make_directory([BOSS, ANN]), None) == {
        "u-boss": "the super user boss@acme.example"}
    assert protected_users(make_directory([BOSS, ANN]), {"email": "x@acme.example"}) == {
        "u-boss": "the super user boss@acme.example"}
    no_super = make_directory([BOSS], roles=[r for r in ROLES if r.name != "super"])
    assert protected_users(no_super, None) == {}

