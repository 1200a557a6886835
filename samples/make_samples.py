"""Generate the sample HR export used to try out ``bulkusers``.

Writes ``hr_users.xlsx`` and ``hr_users.csv`` next to this script: the same 320 people, as
an HR system would export them (HR column names and wording, not Sisense's). Six rows are
deliberately bad; ``README.md`` lists them. The output is deterministic: a fixed random seed,
fixed workbook timestamps and fixed zip entry timestamps, so re-running it rewrites both files
byte for byte.

Run it with ``python samples/make_samples.py``; it needs only the standard library and openpyxl.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
import sys
import unicodedata
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.writer.excel import ExcelWriter

SEED = 20240611
HERE = Path(__file__).resolve().parent
XLSX_PATH = HERE / "hr_users.xlsx"
CSV_PATH = HERE / "hr_users.csv"

#: Fixed timestamps so the XLSX is byte-for-byte reproducible.
WORKBOOK_TIME = dt.datetime(2025, 1, 6, 9, 0, 0)
ZIP_TIME = (2025, 1, 6, 9, 0, 0)

DOMAIN = "acme-corp.example"

COLUMNS: tuple[str, ...] = (
    "Employee ID",
    "First Name",
    "Surname",
    "Work Email",
    "Job Title",
    "Department",
    "Sisense Role",
    "Groups",
    "Phone",
    "Start Date",
    "Cost Centre",
)

#: The only group names that exist in the target Sisense instance.
GROUPS: tuple[str, ...] = (
    "Finance",
    "Sales",
    "Engineering",
    "Marketing",
    "Human Resources",
    "Operations",
    "Customer Success",
    "Leadership",
)

# Role wording as the HR system spells it.
VIEWER, DESIGNER, DATA_DESIGNER, ADMIN = "Viewer", "Designer", "Data Designer", "Admin"


@dataclass(frozen=True, slots=True)
class Department:
    """An HR department: its size, default group, cost centre and job titles."""

    name: str
    size: int
    group: str
    cost_centre: int
    #: Titles held by exactly one person each (heads, specialists), in this order.
    unique: tuple[tuple[str, str], ...]
    #: (title, role, weight) for everyone else.
    common: tuple[tuple[str, str, int], ...]


DEPARTMENTS: tuple[Department, ...] = (
    Department(
        name="Sales",
        size=70,
        group="Sales",
        cost_centre=310,
        unique=(("Head of Sales, EMEA", VIEWER), ("Sales Operations Manager", DESIGNER)),
        common=(
            ("Account Executive", VIEWER, 30),
            ("Senior Account Executive", VIEWER, 15),
            ("Sales Development Representative", VIEWER, 20),
            ("Regional Sales Manager", VIEWER, 8),
            ("Key Account Manager", VIEWER, 10),
            ("Sales Operations Analyst", DESIGNER, 5),
        ),
    ),
    Department(
        name="Engineering",
        size=70,
        group="Engineering",
        cost_centre=510,
        unique=(
            ("Head of Engineering", VIEWER),
            ("BI Platform Administrator", ADMIN),
            ("BI Platform Administrator", ADMIN),
            ("Data Engineer", DATA_DESIGNER),
            ("Data Engineer", DATA_DESIGNER),
            ("Senior Data Engineer", DATA_DESIGNER),
            ("Analytics Engineer", DATA_DESIGNER),
            ("Analytics Engineer", DATA_DESIGNER),
        ),
        common=(
            ("Software Engineer", VIEWER, 30),
            ("Senior Software Engineer", VIEWER, 20),
            ("QA Engineer", VIEWER, 8),
            ("DevOps Engineer", VIEWER, 6),
            ("Engineering Manager", VIEWER, 5),
            ("BI Developer", DESIGNER, 6),
        ),
    ),
    Department(
        name="Customer Success",
        size=45,
        group="Customer Success",
        cost_centre=350,
        unique=(("Head of Customer Success", VIEWER),),
        common=(
            ("Customer Success Manager", VIEWER, 20),
            ("Support Specialist", VIEWER, 15),
            ("Senior Support Engineer", VIEWER, 6),
            ("Implementation Consultant", VIEWER, 6),
            ("Customer Insights Analyst", DESIGNER, 4),
        ),
    ),
    Department(
        name="Operations",
        size=40,
        group="Operations",
        cost_centre=610,
        unique=(("Head of Operations", VIEWER), ("Business Intelligence Manager", ADMIN)),
        common=(
            ("Operations Analyst", DESIGNER, 8),
            ("Operations Manager", VIEWER, 6),
            ("Logistics Coordinator", VIEWER, 10),
            ("Procurement Specialist", VIEWER, 6),
            ("Supply Chain Planner", VIEWER, 6),
            ("Facilities Manager", VIEWER, 2),
        ),
    ),
    Department(
        name="Finance",
        size=35,
        group="Finance",
        cost_centre=420,
        unique=(("Head of FP&A", DESIGNER), ("Financial Controller", VIEWER)),
        common=(
            ("Financial Analyst", DESIGNER, 8),
            ("Senior Financial Analyst", DESIGNER, 4),
            ("Accountant", VIEWER, 8),
            ("Management Accountant", VIEWER, 5),
            ("Accounts Payable Clerk", VIEWER, 5),
            ("Payroll Specialist", VIEWER, 3),
            ("Finance Manager", VIEWER, 3),
        ),
    ),
    Department(
        name="Marketing",
        size=30,
        group="Marketing",
        cost_centre=330,
        unique=(("Head of Marketing", VIEWER),),
        common=(
            ("Marketing Executive", VIEWER, 10),
            ("Digital Marketing Specialist", VIEWER, 8),
            ("Content Manager", VIEWER, 5),
            ("Brand Manager", VIEWER, 4),
            ("Marketing Analyst", DESIGNER, 5),
        ),
    ),
    Department(
        name="Human Resources",
        size=20,
        group="Human Resources",
        cost_centre=120,
        unique=(("Head of People", VIEWER), ("People Analytics Analyst", DESIGNER)),
        common=(
            ("HR Business Partner", VIEWER, 6),
            ("HR Advisor", VIEWER, 5),
            ("Recruiter", VIEWER, 6),
            ("HR Coordinator", VIEWER, 3),
        ),
    ),
    Department(
        name="Executive Office",
        size=10,
        group="Leadership",
        cost_centre=100,
        unique=(
            ("Chief Executive Officer", VIEWER),
            ("Chief Financial Officer", VIEWER),
            ("Chief Operating Officer", VIEWER),
            ("Chief Technology Officer", VIEWER),
            ("Chief Revenue Officer", VIEWER),
            ("Chief Marketing Officer", VIEWER),
            ("Chief People Officer", VIEWER),
            ("Chief Data Officer", ADMIN),
            ("Chief of Staff", DESIGNER),
            ("Executive Assistant", VIEWER),
        ),
        common=(),
    ),
)

#: Groups a title gets on top of its department's group.
EXTRA_GROUPS: dict[str, tuple[str, ...]] = {
    "Head of Sales, EMEA": ("Leadership",),
    "Sales Operations Manager": ("Operations",),
    "Sales Operations Analyst": ("Operations",),
    "Head of Engineering": ("Leadership",),
    "BI Platform Administrator": ("Operations",),
    "Head of Customer Success": ("Leadership",),
    "Customer Insights Analyst": ("Marketing",),
    "Head of Operations": ("Leadership",),
    "Business Intelligence Manager": ("Leadership", "Finance"),
    "Head of FP&A": ("Leadership",),
    "Financial Controller": ("Leadership",),
    "Head of Marketing": ("Leadership",),
    "Head of People": ("Leadership",),
    "People Analytics Analyst": ("Operations",),
    "Chief Financial Officer": ("Finance",),
    "Chief Operating Officer": ("Operations",),
    "Chief Technology Officer": ("Engineering",),
    "Chief Revenue Officer": ("Sales", "Customer Success"),
    "Chief Marketing Officer": ("Marketing",),
    "Chief People Officer": ("Human Resources",),
    "Chief Data Officer": ("Engineering",),
}

# Names, grouped by origin so that first names and surnames mostly pair plausibly:
# (weight, first names, surnames), each list comma-separated.
_NAME_TEXT: tuple[tuple[int, str, str], ...] = (
    (
        34,
        "Oliver, Amelia, George, Isla, Harry, Emily, Jack, Sophie, Thomas, Charlotte, James, "
        "Hannah, William, Lucy, Daniel, Grace, Samuel, Megan, Joseph, Eleanor, Siobhán, Niamh, "
        "Ciarán, Aoife, Seán, Rhys, Cerys, Gareth, Fiona, Callum, Eilidh, Zoë, Rebecca, Matthew",
        "Smith, Jones, Taylor, Brown, Williams, Wilson, Evans, Roberts, Walker, Wright, Thompson, "
        "Hughes, Edwards, Green, Hall, Wood, Harris, Clarke, Jackson, O'Brien, Murphy, Kelly, "
        "Byrne, Ryan, MacDonald, Campbell, Stewart, Davies, Lloyd, Price, Fletcher, Bennett, "
        "O'Sullivan, Ní Bhriain",
    ),
    (
        16,
        "Priya, Aarav, Ananya, Rohan, Sanjay, Deepa, Arjun, Kavya, Imran, Ayesha, Fatima, Hassan, "
        "Nikhil, Meera, Rajesh, Sunita",
        "Patel, Shah, Singh, Sharma, Gupta, Khan, Ahmed, Iyer, Reddy, Chaudhry, Hussain, Mistry, "
        "Desai, Rahman",
    ),
    (
        9,
        "Łukasz, Anna, Katarzyna, Piotr, Agnieszka, Tomasz, Małgorzata, Paweł, Zofia, Jakub",
        "Nowak, Wójcik, Kowalczyk, Woźniak, Mazur, Krawczyk, Kaczmarek, Zając, Król, Dudek",
    ),
    (
        9,
        "Jürgen, Lena, Felix, Björn, Søren, Ingrid, Astrid, Matthias, Katrin, Lars, Freya, Anouk, "
        "Daan, Sven",
        "Müller, Schmidt, Schäfer, Becker, Hoffmann, Weiß, Jansen, de Vries, van den Berg, "
        "Andersson, Nielsen, Lindqvist, Østergaard, Bergström",
    ),
    (
        9,
        "José, María, Inés, Alejandro, Lucía, Javier, Sofía, Mateo, Camila, João, Beatriz, Raúl",
        "García, Fernández, Núñez, Rodríguez, López, Martínez, Pérez, Gómez, Sánchez, Díaz, "
        "Silva, Gonçalves, Ortega",
    ),
    (
        7,
        "François, Chloé, Renée, Noémie, Théo, Élodie, Hélène, Giulia, Marco, Alessandro, "
        "Francesca, Matteo, Lorenzo",
        "Dubois, Lefèvre, Moreau, Girard, Rossi, Bianchi, Romano, Ferrari, Esposito, Colombo, "
        "Leclerc",
    ),
    (
        7,
        "Wei, Mei, Jun, Hiroshi, Yuki, Haruto, Min-jun, Seo-yeon, Hana, Kenji, Linh, Minh",
        "Chen, Wang, Zhang, Liu, Tanaka, Suzuki, Sato, Kim, Park, Lee, Nguyen, Tran",
    ),
    (
        6,
        "Chinedu, Ngozi, Kwame, Ama, Tendai, Amara, Oluwaseun, Folake, Kofi, Zainab, Chipo",
        "Okafor, Adeyemi, Mensah, Boateng, Mwangi, Okonkwo, Osei, Banda, Nwosu, Achebe",
    ),
    (
        4,
        "Yusuf, Leila, Omar, Elif, Mehmet, Nour, Karim, Zeynep",
        # "\u0131" is the Turkish dotless i.
        "Y\u0131lmaz, Demir, Haddad, Nasser, Aziz, Şahin, Öztürk",
    ),
)
NAME_POOLS: tuple[tuple[int, tuple[str, ...], tuple[str, ...]], ...] = tuple(
    (weight, tuple(firsts.split(", ")), tuple(surnames.split(", ")))
    for weight, firsts, surnames in _NAME_TEXT
)

# Letters that Unicode decomposition does not reduce to ASCII.
_FOLD_EXTRA = str.maketrans(
    {"ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "ß": "ss", "æ": "ae", "Æ": "AE", "\u0131": "i"}
)

# ---------------------------------------------------------------------------------------------
# The deliberately bad rows, by data index (spreadsheet row = index + 2, header = row 1).
# ---------------------------------------------------------------------------------------------
MALFORMED_EMAIL = 17  # row 19: "jane.doe@" (no domain)
DUPLICATE_FIRST = 56  # row 58: its email is repeated by row 203
UNKNOWN_ROLE = 72  # row 74: role "Superuser"
UNKNOWN_GROUP = 129  # row 131: group "Finanse" (typo of Finance)
DUPLICATE_SECOND = 201  # row 203: same email as row 58 (a namesake)
MISSING_EMAIL = 260  # row 262: blank Work Email
BAD_INDICES = frozenset(
    (MALFORMED_EMAIL, DUPLICATE_FIRST, UNKNOWN_ROLE, UNKNOWN_GROUP, DUPLICATE_SECOND, MISSING_EMAIL)
)
#: A fixed person whose email is written in mixed case.
ANNA_INDEX = 96


@dataclass(frozen=True, slots=True)
class Person:
    """One row of the HR export."""

    employee_id: str
    first_name: str
    surname: str
    email: str
    job_title: str
    department: str
    role: str
    groups: str
    phone: str
    start_date: dt.date
    cost_centre: int

    def csv_cells(self) -> list[str]:
        """The row as CSV text, in ``COLUMNS`` order."""
        return [
            self.employee_id,
            self.first_name,
            self.surname,
            self.email,
            self.job_title,
            self.department,
            self.role,
            self.groups,
            self.phone,
            self.start_date.isoformat(),
            f"{self.cost_centre:05d}",
        ]


def ascii_fold(text: str) -> str:
    """``text`` reduced to lower-case ASCII letters and hyphens, for an email local part."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_FOLD_EXTRA))
    kept = (ch for ch in decomposed if not unicodedata.combining(ch))
    return "".join(ch for ch in kept if ch.isascii() and (ch.isalnum() or ch == "-")).lower()


def email_for(first: str, surname: str) -> str:
    """The company's email convention: firstname.surname@domain, folded to ASCII."""
    return f"{ascii_fold(first)}.{ascii_fold(surname)}@{DOMAIN}"


def draw_names(rng: random.Random, count: int) -> list[tuple[str, str]]:
    """``count`` distinct (first name, surname) pairs whose emails are distinct too."""
    weights = [pool[0] for pool in NAME_POOLS]
    reserved = {email_for("Anna", "Kowalska"), email_for("Jane", "Doe")}
    names: list[tuple[str, str]] = []
    seen: set[str] = set(reserved)
    while len(names) < count:
        first_pool = rng.choices(NAME_POOLS, weights)[0]
        # About one in eight people has a surname from another background.
        surname_pool = rng.choices(NAME_POOLS, weights)[0] if rng.random() < 0.125 else first_pool
        first = rng.choice(first_pool[1])
        surname = rng.choice(surname_pool[2])
        key = email_for(first, surname)
        if key not in seen:
            seen.add(key)
            names.append((first, surname))
    return names


def assign_departments(rng: random.Random) -> list[tuple[Department, str, str]]:
    """(department, job title, role) for every person, in random order."""
    staff: list[tuple[Department, str, str]] = []
    for dept in DEPARTMENTS:
        rest = dept.size - len(dept.unique)
        titles = [(dept, title, role) for title, role in dept.unique]
        if rest:
            picks = rng.choices(dept.common, [weight for _, _, weight in dept.common], k=rest)
            titles.extend((dept, title, role) for title, role, _ in picks)
        staff.extend(titles)
    rng.shuffle(staff)
    # The "Finanse" typo belongs on someone in Finance: swap a Finance person into that slot.
    if staff[UNKNOWN_GROUP][0].name != "Finance":
        other = next(
            i
            for i, (dept, _, role) in enumerate(staff)
            if dept.name == "Finance" and role == VIEWER and i not in BAD_INDICES
        )
        staff[UNKNOWN_GROUP], staff[other] = staff[other], staff[UNKNOWN_GROUP]
    return staff


def groups_for(rng: random.Random, dept: Department, title: str) -> list[str]:
    """One to three group names: the department's, the title's extras, sometimes one more."""
    groups = [dept.group, *EXTRA_GROUPS.get(title, ())]
    if len(groups) == 1 and rng.random() < 0.08:
        groups.append(rng.choice([g for g in GROUPS if g not in groups and g != "Leadership"]))
    return groups[:3]


def start_dates(rng: random.Random, count: int) -> list[dt.date]:
    """``count`` weekday start dates, ascending (employee IDs are issued in hiring order)."""
    first, last = dt.date(2009, 1, 5), dt.date(2025, 9, 29)
    span = (last - first).days
    dates: list[dt.date] = []
    while len(dates) < count:
        day = first + dt.timedelta(days=rng.randrange(span + 1))
        if day.weekday() < 5:
            dates.append(day)
    return sorted(dates)


def build_people() -> list[Person]:
    """The 320 rows, good and bad, in export order (by employee ID)."""
    rng = random.Random(SEED)
    count = sum(dept.size for dept in DEPARTMENTS)
    staff = assign_departments(rng)
    names = draw_names(rng, count)
    ids = sorted(rng.sample(range(100, 5000), count))
    phones = rng.sample(range(1000), count)
    dates = start_dates(rng, count)

    # Fixed people: the mixed-case example and the malformed-email row.
    names[ANNA_INDEX] = ("Anna", "Kowalska")
    names[MALFORMED_EMAIL] = ("Jane", "Doe")
    # A namesake of an earlier employee, to whom HR gave the same address.
    names[DUPLICATE_SECOND] = names[DUPLICATE_FIRST]

    people: list[Person] = []
    pipe_budget = 5
    for i, ((dept, title, role), (first, surname)) in enumerate(zip(staff, names, strict=True)):
        groups = groups_for(rng, dept, title)
        separator = "; "
        if len(groups) > 1 and pipe_budget and i not in BAD_INDICES and rng.random() < 0.12:
            separator = "|"
            pipe_budget -= 1
        people.append(
            Person(
                employee_id=f"{ids[i]:06d}",
                first_name=first,
                surname=surname,
                email=email_for(first, surname),
                job_title=title,
                department=dept.name,
                role=role,
                groups=separator.join(groups),
                phone=f"+44 20 7946 0{phones[i]:03d}",
                start_date=dates[i],
                cost_centre=dept.cost_centre,
            )
        )

    # Mixed-case emails (valid; the tool matches emails case-insensitively).
    people[ANNA_INDEX] = replace(people[ANNA_INDEX], email="Anna.Kowalska@Acme-Corp.example")
    good = [i for i in range(count) if i not in BAD_INDICES and i != ANNA_INDEX]
    for i in rng.sample(good, 3):
        person = people[i]
        local = f"{ascii_fold(person.first_name).title()}.{ascii_fold(person.surname).title()}"
        people[i] = replace(person, email=f"{local}@{DOMAIN}")

    # Role wording variants that still mean a known role.
    viewers = [i for i in good if people[i].role == VIEWER]
    variants = ("viewer", "viewer", "VIEWER", "consumer", "consumer")
    for i, variant in zip(rng.sample(viewers, len(variants)), variants, strict=True):
        people[i] = replace(people[i], role=variant)

    # The deliberate defects.
    people[MALFORMED_EMAIL] = replace(people[MALFORMED_EMAIL], email="jane.doe@")
    people[UNKNOWN_ROLE] = replace(people[UNKNOWN_ROLE], role="Superuser")
    people[UNKNOWN_GROUP] = replace(people[UNKNOWN_GROUP], groups="Finanse")
    people[MISSING_EMAIL] = replace(people[MISSING_EMAIL], email="")
    return people


def write_csv(people: Sequence[Person], path: Path) -> None:
    """UTF-8 with BOM, comma-separated, CRLF line ends (as Excel writes "CSV UTF-8")."""
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows(person.csv_cells() for person in people)


def build_workbook(people: Sequence[Person]) -> Workbook:
    """The XLSX version: IDs as text cells, real dates, cost centres as formatted numbers."""
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Employees"
    ws.append(list(COLUMNS))
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for row, person in enumerate(people, start=2):
        values: list[str | dt.date | int | None] = [
            person.employee_id,
            person.first_name,
            person.surname,
            person.email or None,
            person.job_title,
            person.department,
            person.role,
            person.groups,
            person.phone,
            person.start_date,
            person.cost_centre,
        ]
        for column, value in enumerate(values, start=1):
            cell = ws.cell(row=row, column=column, value=value)
            if value is not None and isinstance(value, str):
                cell.data_type = "s"  # never a formula, even for text starting with "=" or "+"
        ws.cell(row=row, column=1).number_format = "@"
        ws.cell(row=row, column=10).number_format = "yyyy-mm-dd"
        ws.cell(row=row, column=11).number_format = "00000"
    widths = (12, 14, 16, 38, 34, 18, 14, 40, 18, 12, 12)
    for column, width in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(column)].width = width
    ws.freeze_panes = "A2"
    wb.properties.creator = "Acme Corp HRIS"
    wb.properties.title = "Employee export"
    wb.properties.created = WORKBOOK_TIME
    wb.properties.modified = WORKBOOK_TIME
    return wb


def write_xlsx(wb: Workbook, path: Path) -> None:
    """Save ``wb`` reproducibly: fixed document times and fixed zip entry times."""
    # openpyxl's save() stamps "modified" with the current time, and zip entries get the
    # current time too, so write through ExcelWriter and re-pack with a fixed timestamp.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        ExcelWriter(wb, archive).write_data()
    buffer.seek(0)
    with (
        zipfile.ZipFile(buffer) as source,
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for info in source.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=ZIP_TIME)
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o644 << 16
            target.writestr(fixed, source.read(info.filename))


def main(argv: Sequence[str] | None = None) -> int:
    """Write both sample files and print where they went."""
    del argv
    people = build_people()
    write_csv(people, CSV_PATH)
    write_xlsx(build_workbook(people), XLSX_PATH)
    print(f"wrote {len(people)} rows to {CSV_PATH.name} and {XLSX_PATH.name} in {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
