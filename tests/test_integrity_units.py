"""Units of issue 7's integrity rules: identity keys, safe text, row checks, secret column
names, blank-looking group cells, the deactivation ledger."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bulkusers.directory import Directory, Group
from bulkusers.identity import EMAIL, identity_key, stored_email
from bulkusers.ledger import Ledger, ledger_path, read_ledger
from bulkusers.models import Row, RowResult, Status
from bulkusers.report import is_secret_name
from bulkusers.rowcheck import ERROR_VALUE, UNCACHED_FORMULA, RowCheck
from bulkusers.rules import split_groups
from bulkusers.safetext import excerpt, find_control, is_blank, printable, quote

# -- identity -------------------------------------------------------------------------------

#: Pairs a mail system delivers to two mailboxes: they must never share a key.
DISTINCT = [("straße@x.example", "strasse@x.example"), ("\ufb01@x.example", "fi@x.example"),
            ("É@x.example", "é@x.example"), ("\u212a@x.example", "k@x.example"),
            ("\u0131@x.example", "i@x.example"), ("İ@x.example", "i@x.example"),
            ("\uff21@x.example", "a@x.example"), ("é@x.example", "e\u0301@x.example"),
            ("\u03a3@x.example", "\u03c3@x.example")]


@pytest.mark.parametrize(("one", "other"), DISTINCT)
def test_identity_keys_keep_non_ascii_differences(one: str, other: str) -> None:
    """Unicode case folding, ligatures, compatibility forms and normal forms are not folded."""
    assert identity_key(one) != identity_key(other)


def test_identity_keys_ignore_ascii_case_only() -> None:
    """ASCII letters in any case give one key; other characters keep their case."""
    assert identity_key("Ann.LEE@Acme.Example") == identity_key("ann.lee@acme.example")
    assert identity_key("ÉVA@X.EXAMPLE") == "Éva@x.example"


def test_stored_email_trims_and_lowers_ascii_unless_kept() -> None:
    """Create stores an address trimmed and ASCII-lower-cased; --keep-email-case keeps it."""
    assert stored_email("  Ann.Lee@Acme.Example\t") == "ann.lee@acme.example"
    assert stored_email(" ÉVA@X.EXAMPLE ") == "Éva@x.example"
    assert stored_email(" Ann@X.Example ", keep_case=True) == "Ann@X.Example"


#: Addresses the v1 specification's rule accepts: every alternative of each part.
SPEC_ACCEPTS = ["jane@acme.example", "jane.q.public@acme.example", "a+b_c-d@x.example",
                '"q q"@acme.example', '"a@b"@acme.example', "a@[10.0.0.1]", "jane@corp",
                "a@-x.example", "a@x-y.z-w.example", "straße@acme.example", "a@b.co",
                '"a"b"@acme.example', '"a\\"@acme.example', "a@[999.1.1.1]",
                "a@acme.example\n"]  # the spec's $ also matches before a final line break
#: And those it refuses: a wrong dot anywhere, a forbidden character, a short top-level
#: domain, a malformed address literal, nothing on one side.
SPEC_REFUSES = ["a..b@x.example", ".a@x.example", "a.@x.example", "a,b@x.example",
                "a b@x.example", "a\t@x.example", "a@b.c", "a@x..example", "a@x.example.",
                "a@.x.example", "a@[1.2.3]", "a@[1.2.3.4", "a@b@x.example", "@x.example",
                "a@", '"@x.example', "a@x.exam_ple", "a@x.ex4mple", "a@[1234.1.1.1]",
                '""@x.example', "a@x.example\n\n", "a@x.example "]


@pytest.mark.parametrize("email", SPEC_ACCEPTS)
def test_the_email_rule_accepts_what_the_spec_accepts(email: str) -> None:
    """Each accepted form of the specification's email pattern passes the rule."""
    assert EMAIL.match(email)


@pytest.mark.parametrize("email", SPEC_REFUSES)
def test_the_email_rule_refuses_what_the_spec_refuses(email: str) -> None:
    """Each refused form of the specification's email pattern fails the rule."""
    assert not EMAIL.match(email)


def test_group_lookup_ignores_ascii_case_only() -> None:
    """A group is found in any ASCII case, never through a Unicode lookalike."""
    directory = Directory((), (Group("g1", "Straße"), Group("g2", "Strasse"),
                               Group("g3", "Field")))
    assert directory.group("STRASSE") == Group("g2", "Strasse")
    assert directory.group("straße") == Group("g1", "Straße")
    assert directory.group("field") == Group("g3", "Field")
    assert not isinstance(directory.group("\ufb01eld"), Group)


# -- safe text ------------------------------------------------------------------------------

CONTROLS = ["\x00", "\x07", "\x08", "\x1b", "\x7f", "\x85", "\x9b", "\u202e", "\u2066", "\t"]


@pytest.mark.parametrize("char", CONTROLS)
def test_control_characters_are_found_and_shown_as_escapes(char: str) -> None:
    """Every C0/C1 control, DEL and bidi control is found, and printed as a visible escape."""
    text = f"ab{char}cd"
    assert find_control(text) == 2
    shown = printable(text)
    assert find_control(shown) == -1
    assert shown.startswith("ab\\")
    assert shown.endswith("cd")


@pytest.mark.parametrize("cell", ["\u200b", "\u00a0", "\ufeff \u2060", "   ", "\u200c\u200d"])
def test_invisible_text_is_blank(cell: str) -> None:
    """Whitespace, NBSP and zero-width characters alone are blank and name no group."""
    assert is_blank(cell)
    assert split_groups(cell) == []


@pytest.mark.parametrize("cell", [";", " | ", ";;", " ; | ", "\u200b; \u00a0"])
def test_separators_alone_name_no_group(cell: str) -> None:
    """A groups cell of separators (and invisible text) names no group."""
    assert split_groups(cell) == []


def test_split_groups_keeps_lookalike_names_apart() -> None:
    """Straße and Strasse are two groups; Sales and SALES are one."""
    assert split_groups("Straße; Strasse | Sales;SALES;;") == ["Straße", "Strasse", "Sales"]


def test_quotes_and_excerpts_are_short() -> None:
    """A message quotes at most 80 characters of a cell, and says how long it was."""
    huge = "x" * 5_000_000
    assert len(quote(huge)) < 120
    assert "5,000,000 characters" in quote(huge)
    assert len(excerpt(huge)) < 120
    assert excerpt("short") == "short"


# -- row checks -----------------------------------------------------------------------------


def check(*cells: str, limit: int = 1000) -> Row:
    """A row of three named columns checked with a byte limit."""
    return RowCheck(("Email", "First Name", "Notes"), limit)(2, cells)


def test_sound_row_passes_untouched() -> None:
    """A row without anything hostile keeps its cells and has no problem."""
    assert check("a@x.example", "Ann", "note") == Row(2, ("a@x.example", "Ann", "note"))


def test_oversized_cell_counts_utf8_bytes_and_is_dropped() -> None:
    """A cell over the limit in UTF-8 bytes (not characters) is emptied and named."""
    row = check("a@x.example", "é" * 600, "")
    assert row.problem.startswith("column 'First Name' holds 1,200 bytes")
    assert row.values[1] == ""
    assert check("a@x.example", "a" * 1000, "").problem == ""


@pytest.mark.parametrize("char", ["\x00", "\x1b", "\x7f", "\x85", "\u202e"])
def test_control_character_inside_a_cell_is_a_problem(char: str) -> None:
    """A control character inside any cell, even an ignored one, makes the row invalid."""
    assert "control character" in check(f"a{char}@x.example", "A", "").problem
    assert "control character" in check("a@x.example", "A", f"n{char}te").problem


def test_whitespace_around_a_cell_is_not_a_problem() -> None:
    """A tab or line break around a value is trimmed before use, so it is no problem."""
    assert check("\ta@x.example\n", " Ann\t", "").problem == ""


def test_formula_and_error_markers_are_problems() -> None:
    """A formula without a saved value and an Excel error value make the row invalid."""
    assert "formula without a saved value" in check("a@x.example", UNCACHED_FORMULA, "").problem
    row = check("a@x.example", ERROR_VALUE + "#N/A", "")
    assert "error value #N/A" in row.problem
    assert row.values[1] == ""


# -- secret-looking column names ------------------------------------------------------------


@pytest.mark.parametrize("name", ["API Key", "apiKey", "Client Secret", "Access Token",
                                  "Credentials", "PIN", "Temp Pwd", "passphrase", "x-api-key",
                                  "SSH_PRIVATE_KEY", "OTP", "License Key", "Session Cookie",
                                  "Bearer", "Passcode", "MFA Seed", "auth", "Recovery Code",
                                  "Backup Codes", "One-Time Code", "Security Answer",
                                  "Seed Phrase", "Kennwort", "Contraseña", "Senha",
                                  "Initial PW", "PW", "pw", "User PW", "Temp PW", "initial_pw",
                                  "userPw", "PW-Reset"])
def test_secret_looking_names(name: str) -> None:
    """Names that suggest a secret are masked."""
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["Email", "First Name", "Department", "Groups", "Role",
                                  "Keyboard Layout", "Pinned", "Spinner", "Language",
                                  "Postal Code", "Country Code", "Department Code",
                                  "Power User", "Upward", "PWA Enabled", "Pwllheli Office"])
def test_ordinary_names_are_not_secret(name: str) -> None:
    """Ordinary column names, even containing 'key' or 'pin' inside a word, are echoed."""
    assert not is_secret_name(name)


# -- the deactivation ledger ----------------------------------------------------------------


def result(user_id: str, action: str, status: Status) -> RowResult:
    """A finished row for the ledger."""
    return RowResult(row=Row(2, ()), email="a@x.example", action=action, status=status,
                     user_id=user_id)


def test_ledger_keeps_the_first_record_until_released(private_state: Path) -> None:
    """The ledger keeps a first record until released, and survives a torn last line."""
    url = "http://127.0.0.1:9/"
    first = json.dumps({"role": "admin", "groups": ["Finance"]})
    ledger = Ledger(url, read_ledger(url))
    ledger.pending("u1", "a@x.example", first)
    ledger.settle(result("u1", "deactivate", Status.DEACTIVATED))
    ledger.close()
    with ledger_path(url).open("a", encoding="utf-8") as handle:
        handle.write('{"user_id": "u1", "sta')  # a crash mid-line
    records = read_ledger(url.rstrip("/"))
    assert (records["u1"].previous, records["u1"].state) == (first, "done")
    again = Ledger(url, records)
    again.pending("u1", "a@x.example", first)
    again.settle(result("u1", "reactivate", Status.UPDATED))
    again.close()
    assert read_ledger(url) == {}
    assert ledger_path(url).is_relative_to(private_state)


def test_failed_deactivation_stays_pending(private_state: Path) -> None:
    """A deactivation that did not finish stays pending with its record (for the next run)."""
    url = "http://127.0.0.1:9"
    ledger = Ledger(url, {})
    ledger.pending("u2", "b@x.example", '{"role": "admin"}')
    ledger.settle(result("u2", "deactivate", Status.FAILED))
    ledger.close()
    assert read_ledger(url)["u2"].state == "pending"
    assert ledger_path(url).parent.parent == private_state


def test_a_resumed_journal_never_glues_its_next_record_to_a_torn_line(tmp_path: Path) -> None:
    """A crash that cut the undo journal's last line short does not swallow the record the
    resumed run appends next (the same rule as the ledger's, in one place)."""
    from bulkusers.directory import User
    from bulkusers.journal import Journal, read_journal
    from bulkusers.tasks import DeleteTask

    path = tmp_path / "run.undo.jsonl"
    path.write_text('{"row": 2, "email": "a@x.com", "user_id": "1", "action": "delete", '
                    '"previous": "{}"}\n{"row": 3, "email": "b@x.c', encoding="utf-8")
    user = User(id="4", email="c@x.com", user_name="c@x.com", first_name="", last_name="",
                role_id="", group_ids=())
    journal = Journal(path, fresh=False)
    journal.note(DeleteTask(row=Row(4, ("c@x.com",)), email="c@x.com", user=user,
                            previous='{"email": "c@x.com"}'))
    journal.close()
    assert sorted(read_journal(path)) == [2, 4]
