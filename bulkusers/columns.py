"""Header normalisation: column names to canonical fields, HR aliases and report read-back."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence

from bulkusers.errors import InputError
from bulkusers.models import FIELDS, Header
from bulkusers.safetext import QUOTE_LIMIT, printable

#: The columns a bulkusers report starts with, before the input's own columns.
REPORT_COLUMNS: tuple[str, ...] = (
    "row",
    "email",
    "action",
    "status",
    "user_id",
    "http_status",
    "error",
    "attempts",
    "elapsed_ms",
    "changes",
    "previous",
)
#: Position of ``previous``: a user's state before a run changed or deleted it, as JSON.
PREVIOUS = REPORT_COLUMNS.index("previous")
#: Position of ``action``: what the run did to the line's user.
ACTION = REPORT_COLUMNS.index("action")
#: Fields a report's ``previous`` can give back, for re-creating users from a delete report.
RESTORABLE = ("userName", "firstName", "lastName", "role", "groups", "language")
#: The actions whose ``previous`` is a record to restore: on such a line every field the
#: record holds comes from it, not from the file the run was given (a leavers list that
#: spelt the address its own way, or named other groups).
RESTORING = frozenset({"delete"})

# Keys are names with case, spaces, underscores, hyphens and dots removed. Every alias is a name
# that only ever means that field: a near miss (Department, Team, User ID) stays unknown and is
# reported, which is safer than writing it into Sisense as something it is not.
_ALIASES: dict[str, tuple[str, ...]] = {
    "email": (
        "email", "emailaddress", "mail", "mailaddress", "workemail", "workemailaddress",
        "businessemail", "businessemailaddress", "companyemail", "corporateemail",
        "officeemail", "useremail", "primaryemail", "emailid",
    ),
    "userName": ("username", "login", "loginname", "loginid", "userlogin", "sisenseusername"),
    "firstName": ("firstname", "first", "givenname", "forename", "fname"),
    "lastName": ("lastname", "last", "surname", "familyname", "lname"),
    "role": ("role", "roles", "rolename", "roleid", "sisenserole", "userrole"),
    "groups": (
        "groups", "group", "groupname", "groupnames", "teams", "sisensegroups", "usergroups",
    ),
    "password": ("password", "passwd", "initialpassword"),
    "language": ("language", "locale", "localeid", "lang", "preferredlanguage"),
}
_FIELD_BY_KEY: dict[str, str] = {
    key: field_name for field_name, keys in _ALIASES.items() for key in keys
}
assert set(_ALIASES) == set(FIELDS), "every canonical field needs aliases"

#: Names shown to the user when the email column is missing.
EMAIL_NAMES = ("email", "E-mail", "Email Address", "Work Email", "Mail", "Business Email")

_IGNORED = re.compile(r"[\s_.\-\ufeff]+")


def normalise_header(name: str) -> str:
    """Return the canonical field a column name stands for, or "" when it is not one."""
    return _FIELD_BY_KEY.get(column_key(name), "")


def column_key(name: str) -> str:
    """What two spellings of one column name share ("Work Email", "work_email"): no case, no
    spaces or punctuation."""
    return _IGNORED.sub("", name).casefold()


def show(name: str) -> str:
    """A column (or sheet) name quoted on one line, escaped and cut short, for messages."""
    shown = printable(" ".join(name.split()))
    if len(shown) > QUOTE_LIMIT:
        shown = f"{shown[:QUOTE_LIMIT]}... ({len(name):,} characters)"
    return "'" + shown + "'"


def is_report_header(names: Sequence[str]) -> bool:
    """True when ``names`` is the header of a bulkusers report."""
    return tuple(name.strip() for name in names[: len(REPORT_COLUMNS)]) == REPORT_COLUMNS


#: A record's cells in the header's order, and whether its email comes from a record that
#: wins (a delete report's ``previous``): that address is re-created exactly as recorded.
Shaped = tuple[tuple[str, ...], bool]
Shaper = Callable[[Sequence[str]], Shaped]


def build_header(source: str, names: Sequence[str]) -> tuple[Header, Shaper]:
    """Map a file's header to fields; return it and the function that shapes each record.

    A bulkusers report read back as input drops its own leading columns and keeps the input's;
    fields the input lacked are filled from the report's ``previous`` column, so that a delete
    report re-creates its users through ``import``.
    """
    is_report = is_report_header(names)
    skip = len(REPORT_COLUMNS) if is_report else 0
    columns = list(names[skip:])
    # Spreadsheets often carry formatted but empty cells to the right of the real header.
    while columns and not columns[-1].strip():
        columns.pop()
    index: dict[str, int] = {}
    unknown: list[str] = []
    for position, name in enumerate(columns):
        field_name = normalise_header(name)
        if not field_name:
            if name.strip() and name not in unknown:
                unknown.append(name)
            continue
        if field_name in index:
            first = columns[index[field_name]]
            raise InputError(
                f"{source}: columns {show(first)} and {show(name)} both mean {field_name}; "
                "rename or remove one of them"
            )
        index[field_name] = position
    if is_report:
        # A report never holds a password (it shows ***): re-importing must not set one.
        index.pop("password", None)
        # The report's own email is the key even when the input named it differently.
        if "email" not in index:
            columns.append("email")
            index["email"] = len(columns) - 1
        restored = [f for f in RESTORABLE if f not in index]
        for field_name in restored:
            columns.append(field_name)
            index[field_name] = len(columns) - 1
    if "email" not in index:
        named = [show(name) for name in columns if name.strip()]
        found = "found columns " + ", ".join(named) if named else "the header names no columns"
        raise InputError(
            f"{source}: no email column ({found}); name the column with the users' email "
            f"one of: {', '.join(EMAIL_NAMES)}"
        )
    header = Header(tuple(columns), index, tuple(unknown))
    if is_report:
        return header, _report_shaper(_input_width(names, skip), columns, index)
    return header, _plain_shaper(len(columns))


def _input_width(names: Sequence[str], skip: int) -> int:
    """How many of the header's columns come from the original input."""
    kept = list(names[skip:])
    while kept and not kept[-1].strip():
        kept.pop()
    return len(kept)


def _plain_shaper(keep: int) -> Shaper:
    def shape(cells: Sequence[str]) -> Shaped:
        values = list(cells[:keep])
        values.extend([""] * (keep - len(values)))
        return tuple(values), False

    return shape


def _report_shaper(keep: int, columns: Sequence[str], index: dict[str, int]) -> Shaper:
    skip = len(REPORT_COLUMNS)
    extra = columns[keep:]
    # The input's own columns for the fields a report's ``previous`` can fill.
    own = {name: index[name] for name in ("email", *RESTORABLE) if index.get(name, keep) < keep}

    def shape(cells: Sequence[str]) -> Shaped:
        values = list(cells[skip : skip + keep])
        values.extend([""] * (keep - len(values)))
        previous = _previous(cells[PREVIOUS] if len(cells) > PREVIOUS else "")
        restoring = len(cells) > ACTION and cells[ACTION].strip() in RESTORING
        for name, position in own.items():
            if restoring and name in previous:
                values[position] = previous[name]  # the record wins over the file
            elif not values[position].strip() and previous.get(name):
                # A blank cell means "leave alone"; the recorded state fills it.
                values[position] = previous[name]
        for name in extra:
            if name == "email":
                recorded = previous.get("email", "") if restoring else ""
                values.append(recorded or (cells[1] if len(cells) > 1 else ""))
            else:
                values.append(previous.get(name, ""))
        return tuple(values), restoring and bool(previous.get("email"))

    return shape


def _previous(text: str) -> dict[str, str]:
    """The ``previous`` JSON of a report line as field texts (groups joined with '; ')."""
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    found: dict[str, str] = {}
    for key, value in data.items():
        if isinstance(value, list):
            found[key] = "; ".join(str(v) for v in value)
        elif value is not None:
            found[key] = str(value)
    return found
