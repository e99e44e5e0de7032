"""UC: Unity Catalog data governance.

Grants come from the ``uc`` section as the DIRECT ``privilege_assignments`` of each securable, raw
(a privilege the SDK does not know stays a string and is judged, never dropped). Privilege semantics
follow shared/access-model.md 1.2: privileges granted on a catalog or schema are inherited by
everything below it (so a grant is judged where it is made, and covers the children); grants on the
metastore are not inherited; ``ALL_PRIVILEGES`` excludes ``MANAGE``; ``account users`` is everyone in
the account; ownership is not a grant. Group membership is transitive (``pytest_dbsec.graph``).

A workspace with no metastore assigned fails UC-01; every other UC control skips on it.
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase

import pytest

from pytest_dbsec.findings import day
from pytest_dbsec.graph import ACCOUNT_USERS, GROUP, SERVICE_PRINCIPAL, USER, Membership

NO_METASTORE = "no metastore assigned"
DAY_MS = 86_400_000
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)

# Same scope as the uc_column_tags section (pytest_dbsec/collect/uc.py): tables a column mask can protect.
UNMASKABLE_CATALOG_TYPES = {"SYSTEM_CATALOG", "DELTASHARING_CATALOG"}
VIEW_TYPES = {"VIEW", "METRIC_VIEW"}
SYSTEM_SCHEMAS = {"information_schema"}
# Catalogs Databricks owns and manages: their owner cannot be changed (UC-07 does not judge them)
MANAGED_CATALOG_TYPES = {"SYSTEM_CATALOG", "INTERNAL_CATALOG"}

# UC-08: what gives raw file access through an external location. ALL_PRIVILEGES expands to the
# first three; MANAGE lets the holder grant them to itself.
LOCATION_STORAGE_PRIVILEGES = {"READ_FILES", "WRITE_FILES", "CREATE_EXTERNAL_TABLE", "CREATE_EXTERNAL_VOLUME",
                               "EXTERNAL_USE_LOCATION", "READ_PRIVATE_FILES", "WRITE_PRIVATE_FILES",
                               "ALL_PRIVILEGES", "MANAGE"}
# Every privilege name the API documents (sdk Privilege enum); anything else is unknown and judged
# as the worst case where that matters.
KNOWN_PRIVILEGES = set(
    """ACCESS ALL_PRIVILEGES APPLY_TAG BROWSE CREATE CREATE_CATALOG CREATE_CLEAN_ROOM CREATE_CONNECTION
    CREATE_EXTERNAL_LOCATION CREATE_EXTERNAL_TABLE CREATE_EXTERNAL_VOLUME CREATE_FEATURE CREATE_FOREIGN_CATALOG
    CREATE_FOREIGN_SECURABLE CREATE_FUNCTION CREATE_MANAGED_STORAGE CREATE_MATERIALIZED_VIEW CREATE_MODEL
    CREATE_PROVIDER CREATE_RECIPIENT CREATE_SCHEMA CREATE_SERVICE_CREDENTIAL CREATE_SHARE
    CREATE_STORAGE_CREDENTIAL CREATE_TABLE CREATE_VIEW CREATE_VOLUME EXECUTE EXECUTE_CLEAN_ROOM_TASK
    EXTERNAL_USE_LOCATION EXTERNAL_USE_SCHEMA MANAGE MANAGE_ALLOWLIST MODIFY MODIFY_CLEAN_ROOM READ_FEATURE
    READ_FILES READ_METADATA READ_PRIVATE_FILES READ_VOLUME REFRESH SELECT SET_SHARE_PERMISSION USAGE
    USE_CATALOG USE_CONNECTION USE_MARKETPLACE_ASSETS USE_PROVIDER USE_RECIPIENT USE_SCHEMA USE_SHARE
    WRITE_FILES WRITE_PRIVATE_FILES WRITE_VOLUME""".split())

# UC-13: states in which the system schema is enabled (MANAGED: enabled and managed by Databricks)
SYSTEM_SCHEMA_ENABLED = {"ENABLE_COMPLETED", "MANAGED"}
# UC-12: recipient authentication types that use no bearer token
TOKENLESS_AUTH = {"DATABRICKS", "OIDC_FEDERATION"}

SQL_REVOKE = ("Revoke it: `REVOKE <privilege> ON <securable> FROM `<principal>`` in SQL, or "
              "`databricks grants update <securable_type> <full_name> --json '{\"changes\": [{\"principal\": "
              "\"<principal>\", \"remove\": [\"<privilege>\"]}]}'` (PATCH /api/2.1/unity-catalog/permissions/"
              "{securable_type}/{full_name}).")


# -- reading the inventory ----------------------------------------------------------------------


def _skip_without_metastore(data: dict) -> None:
    if not data.get("assignment"):
        pytest.skip(NO_METASTORE)


def _uc(workspace) -> dict:
    data = workspace.data("uc")
    _skip_without_metastore(data)
    return data


def _membership(workspace) -> Membership:
    ids = workspace.data("identities")
    return Membership(ids.get("users") or [], ids.get("groups") or [], ids.get("service_principals") or [])


def _privilege(p) -> str:
    """A raw privilege: a string, or {privilege: ...} in the effective-permissions shape."""
    return p if isinstance(p, str) else str((p or {}).get("privilege"))


def _grants(data: dict):
    """Yield (securable key, securable type, full name, principal, [privileges]) of every direct grant."""
    for key, assignments in sorted((data.get("grants") or {}).items()):
        stype, _, full = key.partition("/")
        for a in assignments or []:
            privs = [_privilege(p) for p in a.get("privileges") or []]
            if privs:
                yield key, stype, full, a.get("principal") or "?", privs


def _securables(data: dict) -> dict[str, dict]:
    """Securable key ('catalog/sales') -> its object (for owner and display name)."""
    out = {}
    if data.get("metastore"):
        out[f"metastore/{data['metastore'].get('metastore_id')}"] = data["metastore"]
    for c in data.get("catalogs") or []:
        out[f"catalog/{c.get('name')}"] = c
    for s in data.get("schemas") or []:
        out[f"schema/{s.get('full_name')}"] = s
    for t in data.get("tables") or []:
        out[f"table/{t.get('full_name')}"] = t
    for x in data.get("external_locations") or []:
        out[f"external_location/{x.get('name')}"] = x
    for x in data.get("storage_credentials") or []:
        out[f"storage_credential/{x.get('name')}"] = x
    return out


def _principal_kind(name: str, members: Membership) -> tuple[str, bool]:
    """(user | group | service_principal, known). UC names users by userName, service principals by
    applicationId and groups by display name; a principal the workspace's SCIM does not show (an account
    group with no member here, a user not in this workspace) is classified by the shape of its name."""
    if name == ACCOUNT_USERS:
        return GROUP, True
    p = members.get(name)
    if p is not None:
        return p.kind, True
    if _UUID.match(name):
        return SERVICE_PRINCIPAL, False
    if "@" in name:
        return USER, False
    return GROUP, False


def _kind_text(kind: str, known: bool) -> str:
    words = {USER: "a user", GROUP: "a group", SERVICE_PRINCIPAL: "a service principal"}[kind]
    return words if known else f"{words} (not visible in this workspace; judged by its name)"


class _Broad:
    """Which grantees count as broad groups (UC-03, UC-08): `account users`, a group named in
    grants.broad_groups, or a group with more than grants.broad_group_size users and service principals,
    transitively. Sizes come from the workspace's SCIM view, so they are a lower bound for account groups
    with members outside this workspace."""

    def __init__(self, baseline, members: Membership):
        self.listed = set(baseline.get("grants.broad_groups") or [])
        self.limit = baseline.get("grants.broad_group_size")
        self.members = members
        self._sizes: dict[str, int] | None = None

    def size(self, group: str) -> int:
        if self._sizes is None:  # one upward walk per principal, not one per grant
            self._sizes = {}
            for p in self.members.principals.values():
                if p.kind in (USER, SERVICE_PRINCIPAL):
                    for g in self.members.groups_of(p.name):
                        self._sizes[g] = self._sizes.get(g, 0) + 1
        return self._sizes.get(group, 0)

    def why(self, principal: str) -> str | None:
        """Why the grantee counts as broad, or None."""
        if principal == ACCOUNT_USERS:
            return "`account users` (everyone in the account)"
        if principal in self.listed:
            return "listed in grants.broad_groups"
        p = self.members.get(principal)
        if p is not None and p.kind == GROUP:
            n = self.size(principal)
            if n > self.limit:
                return (f"a group of {n} users and service principals (transitively; more than "
                        f"grants.broad_group_size {self.limit})")
        return None


def _grant_finding(findings, securables: dict, key: str, stype: str, full: str, principal: str,
                   seen: str, expected: str, **details):
    obj = securables.get(key) or {}
    shown = obj.get("name") if stype == "metastore" and obj.get("name") else full
    findings.fail(resource_type="grant", resource_id=f"{key}:{principal}",
                  resource_name=f"{stype} {shown} to {principal}", owner=obj.get("owner"),
                  seen=seen, expected=expected, securable_type=stype, securable=full, principal=principal,
                  **details)



# -- controls -----------------------------------------------------------------------------------


@pytest.mark.dbsec(
    id="UC-01", title="Workspace on a Unity Catalog metastore", severity="high", scope="workspace",
    sections=["uc"], refs={"SAT": ["GOV-16", "GOV-20"], "CIS": ["3.1.5"]},
    rationale="Without Unity Catalog, data access is governed by legacy table ACLs and cluster-level "
              "credentials: no central grants, lineage, audit of data access, masks or row filters.",
    remediation="Assign the workspace to the region's metastore (account admin): "
                "`databricks account metastore-assignments create <workspace_id> <metastore_id> --json "
                "'{\"default_catalog_name\": \"main\"}'` (PUT /api/2.0/accounts/{account_id}/workspaces/"
                "{workspace_id}/metastores/{metastore_id}), then migrate hive_metastore tables (UCX).",
)
def test_UC_01_workspace_on_a_unity_catalog_metastore(workspace, findings):
    data = workspace.data("uc")
    if not (data.get("assignment") or {}).get("metastore_id"):
        findings.fail(resource_type="workspace", resource_id=workspace.id or workspace.name,
                      resource_name=f"workspace {workspace.name}", seen="no Unity Catalog metastore assigned",
                      expected="a metastore assignment")


@pytest.mark.dbsec(
    id="UC-02", title="Metastore admin is a group", severity="high", scope="workspace",
    sections=["uc", "identities"], refs={"SAT": ["GOV-21"]},
    rationale="The metastore admin can take ownership of and grant anything in the metastore. Held by one "
              "person it is a single point of compromise and of failure, and it outlives their role.",
    remediation="Make a small admin group the metastore owner: `databricks metastores update <metastore_id> "
                "--owner <group>` (PATCH /api/2.1/unity-catalog/metastores/{id}) or in the account console "
                "(Catalog > metastore > Metastore admin).",
)
def test_UC_02_metastore_admin_is_a_group(workspace, findings):
    data = _uc(workspace)
    m = data.get("metastore") or {}
    owner = m.get("owner")
    if not owner:
        findings.fail(resource_type="metastore", resource_id=m.get("metastore_id") or data["assignment"]["metastore_id"],
                      resource_name=m.get("name"), seen="owner unknown (not returned)", expected="a group as owner")
        return
    kind, known = _principal_kind(owner, _membership(workspace))
    if kind == USER:
        findings.fail(resource_type="metastore", resource_id=m.get("metastore_id"), resource_name=m.get("name"),
                      owner=owner, seen=f"metastore admin {owner} is {_kind_text(kind, known)}",
                      expected="a group as metastore admin")


@pytest.mark.dbsec(
    id="UC-03", title="No ALL PRIVILEGES to broad groups", severity="critical", scope="workspace",
    sections=["uc", "identities"], refs={"seeds": ["ALL PRIVILEGES to broad groups"], "NIST": ["AC-6"]},
    rationale="ALL PRIVILEGES on a catalog or schema gives read and write on every current and future "
              "table below it; granted to a broad group it makes that data everyone's.",
    remediation=SQL_REVOKE.replace("<privilege>", "ALL PRIVILEGES")
    + " Grant the specific privileges (USE CATALOG, USE SCHEMA, SELECT) to the groups that need them.",
)
def test_UC_03_no_all_privileges_to_broad_groups(workspace, baseline, findings):
    data = _uc(workspace)
    broad, securables = _Broad(baseline, _membership(workspace)), _securables(data)
    for key, stype, full, principal, privs in _grants(data):
        if stype not in ("catalog", "schema") or "ALL_PRIVILEGES" not in privs:
            continue
        why = broad.why(principal)
        if why:
            _grant_finding(findings, securables, key, stype, full, principal,
                           seen=f"ALL_PRIVILEGES to {principal}: {why}; inherited by everything in the {stype}",
                           expected="no ALL_PRIVILEGES on a catalog or schema to a broad group",
                           privileges=privs)


def _public(key: str, stype: str, full: str, allowed: list[str]) -> bool:
    """Is the securable (or the catalog/schema containing it) in grants.public_securables?"""
    names = [key, full]
    if stype in ("schema", "table"):
        parts = full.split(".")
        names += [".".join(parts[:i]) for i in range(1, len(parts))]
    return any(fnmatchcase(n, pattern) for n in names for pattern in allowed)


@pytest.mark.dbsec(
    id="UC-04", title="Nothing granted to everyone", severity="high", scope="workspace",
    sections=["uc"], refs={"NIST": ["AC-6"], "SOC2": ["CC6.3"]},
    rationale="`account users` is every user and service principal of the account, in every workspace. "
              "Anything beyond BROWSE (seeing metadata) granted to it is access nobody decided to give.",
    remediation=SQL_REVOKE.replace("<principal>", "account users")
    + " Grant to the groups that need it instead; declare deliberately public securables in "
      "grants.public_securables.",
)
def test_UC_04_nothing_granted_to_everyone(workspace, baseline, findings):
    data = _uc(workspace)
    allowed = baseline.get("grants.public_securables") or []
    securables = _securables(data)
    for key, stype, full, principal, privs in _grants(data):
        if principal != ACCOUNT_USERS:
            continue
        beyond = [p for p in privs if p != "BROWSE"]
        if not beyond or _public(key, stype, full, allowed):
            continue
        unknown = [p for p in beyond if p not in KNOWN_PRIVILEGES]
        seen = f"{', '.join(beyond)} to account users"
        if unknown:
            seen += f" ({', '.join(unknown)}: privilege unknown to this tool, judged as access)"
        if stype in ("catalog", "schema"):
            seen += f"; inherited by everything in the {stype}"
        _grant_finding(findings, securables, key, stype, full, principal, seen=seen,
                       expected="at most BROWSE to account users, outside grants.public_securables",
                       privileges=beyond)


def _elevation_for(baseline, principal: str, privilege: str, stype: str, full: str):
    """The baseline elevations that name this grant (principal, privilege, securable full name or
    `<type>/<full name>`, globs allowed), current or expired."""
    for e in baseline.elevations:
        if e.principal.casefold() != principal.casefold():
            continue
        if e.privilege.strip().upper().replace(" ", "_") != privilege:
            continue
        if not any(fnmatchcase(n, e.securable) for n in (full, f"{stype}/{full}")):
            continue
        yield e


@pytest.mark.dbsec(
    id="UC-05", title="Grants go to groups", severity="medium", scope="workspace",
    sections=["uc", "identities"], refs={"seeds": ["grants to groups, not users"], "CIS": ["2.1.5"]},
    rationale="Grants to individual users are invisible in group reviews and stay behind when people change "
              "roles; access managed through groups is reviewed and revoked in one place.",
    remediation=SQL_REVOKE + " Grant the privilege to a group the user belongs to; a temporary grant belongs "
                             "in the baseline's elevations with an expiry.",
)
def test_UC_05_grants_go_to_groups(workspace, baseline, findings):
    data = _uc(workspace)
    members, securables = _membership(workspace), _securables(data)
    today = workspace.now.date()
    for key, stype, full, principal, privs in _grants(data):
        kind, known = _principal_kind(principal, members)
        if kind != USER:
            continue
        uncovered, lapsed = [], []
        for priv in privs:
            matches = list(_elevation_for(baseline, principal, priv, stype, full))
            if any(not e.expired(today) for e in matches):
                continue
            uncovered.append(priv)
            lapsed += matches
        if not uncovered:
            continue
        seen = f"{', '.join(uncovered)} granted directly to {principal}, {_kind_text(kind, known)}"
        if lapsed:
            seen += "; its elevation expired on " + ", ".join(sorted({e.expires.isoformat() for e in lapsed}))
        _grant_finding(findings, securables, key, stype, full, principal, seen=seen,
                       expected="grants to groups (or a current elevation in the baseline)", privileges=uncovered,
                       expired_elevations=[e.source for e in lapsed] or None)


@pytest.mark.dbsec(
    id="UC-06", title="MANAGE only to approved groups", severity="high", scope="workspace",
    sections=["uc", "identities"], refs={"seeds": ["privilege escalation: MANAGE grants itself anything"]},
    rationale="MANAGE lets its holder grant and revoke any privilege on the securable, including to itself: "
              "it is latent full access, and (unlike ownership) many principals can hold it.",
    remediation=SQL_REVOKE.replace("<privilege>", "MANAGE")
    + " Keep MANAGE with the groups named in grants.managers.",
)
def test_UC_06_manage_only_to_approved_groups(workspace, baseline, findings):
    data = _uc(workspace)
    members, securables = _membership(workspace), _securables(data)
    approved = set()
    for m in baseline.get("grants.managers") or []:
        approved.add(m)
        p = members.find(m)
        if p is not None:
            approved.add(p.name)
    for key, stype, full, principal, privs in _grants(data):
        if "MANAGE" not in privs or principal in approved:
            continue
        kind, known = _principal_kind(principal, members)
        seen = f"MANAGE held by {principal}, {_kind_text(kind, known)}"
        if stype in ("catalog", "schema"):
            seen += f", on the {stype} (whether MANAGE reaches its children is not documented [verify])"
        _grant_finding(findings, securables, key, stype, full, principal, seen=seen,
                       expected="MANAGE only for principals in grants.managers")


@pytest.mark.dbsec(
    id="UC-07", title="Owners are groups or service principals", severity="medium", scope="workspace",
    sections=["uc", "identities"], refs={"seeds": ["UC ownership by groups"]},
    rationale="An owner has every privilege on the object and can grant on it and its children. Owned by a "
              "person, that power leaves with them (or stays after they change roles) and escapes group review.",
    remediation="Transfer ownership to a group or service principal: `ALTER CATALOG|SCHEMA|EXTERNAL LOCATION|"
                "STORAGE CREDENTIAL <name> OWNER TO `<group>``, or `databricks catalogs update <name> --owner "
                "<group>` (PATCH /api/2.1/unity-catalog/catalogs/{name}; likewise schemas, external-locations, "
                "storage-credentials).",
)
def test_UC_07_owners_are_groups_or_service_principals(workspace, findings):
    data = _uc(workspace)
    members = _membership(workspace)
    cat_types = {c.get("name"): c.get("catalog_type") for c in data.get("catalogs") or []}
    objects = (
        [("catalog", c.get("name"), c) for c in data.get("catalogs") or []
         if c.get("catalog_type") not in MANAGED_CATALOG_TYPES]
        + [("schema", s.get("full_name"), s) for s in data.get("schemas") or []
           if s.get("name") not in SYSTEM_SCHEMAS and cat_types.get(s.get("catalog_name")) not in MANAGED_CATALOG_TYPES]
        + [("external_location", x.get("name"), x) for x in data.get("external_locations") or []]
        + [("storage_credential", x.get("name"), x) for x in data.get("storage_credentials") or []])
    for rtype, name, obj in objects:
        owner = obj.get("owner")
        if not owner:
            findings.fail(resource_type=rtype, resource_id=name, seen="owner unknown (not returned)",
                          expected="a group or service principal as owner")
            continue
        kind, known = _principal_kind(owner, members)
        if kind == USER:
            findings.fail(resource_type=rtype, resource_id=name, owner=owner,
                          seen=f"owned by {owner}, {_kind_text(kind, known)}",
                          expected="a group or service principal as owner")


@pytest.mark.dbsec(
    id="UC-08", title="Storage access not broad", severity="high", scope="workspace",
    sections=["uc", "identities"], refs={"SAT": ["GOV-22"]},
    rationale="READ FILES / WRITE FILES on an external location and privileges on a storage credential give "
              "raw access to cloud storage paths, around every table grant, mask and row filter.",
    remediation=SQL_REVOKE.replace("<securable>", "EXTERNAL LOCATION|STORAGE CREDENTIAL <name>")
    + " Grant file access to the few engineering groups or service principals that load data; give everyone "
      "else tables and volumes.",
)
def test_UC_08_storage_access_not_broad(workspace, baseline, findings):
    data = _uc(workspace)
    broad, securables = _Broad(baseline, _membership(workspace)), _securables(data)
    for key, stype, full, principal, privs in _grants(data):
        if stype == "external_location":
            risky = [p for p in privs if p in LOCATION_STORAGE_PRIVILEGES or p not in KNOWN_PRIVILEGES]
        elif stype == "storage_credential":
            risky = list(privs)
        else:
            continue
        if not risky:
            continue
        why = broad.why(principal)
        if not why:
            continue
        unknown = [p for p in risky if p not in KNOWN_PRIVILEGES]
        seen = f"{', '.join(risky)} on {stype.replace('_', ' ')} {full} to {principal}: {why}"
        if unknown:
            seen += f" ({', '.join(unknown)}: privilege unknown to this tool, judged as storage access)"
        _grant_finding(findings, securables, key, stype, full, principal, seen=seen,
                       expected="no file access or storage credential privilege for broad groups", privileges=risky)


def _maskable(data: dict) -> list[dict]:
    types = {c.get("name"): c.get("catalog_type") for c in data.get("catalogs") or []}
    return [t for t in data.get("tables") or []
            if types.get(t.get("catalog_name")) not in UNMASKABLE_CATALOG_TYPES
            and t.get("table_type") not in VIEW_TYPES
            and t.get("schema_name") not in SYSTEM_SCHEMAS]


@pytest.mark.dbsec(
    id="UC-09", title="PII columns masked", severity="high", scope="workspace",
    sections=["uc", "uc_column_tags"], refs={"seeds": ["PII column masking"]},
    rationale="Personal data readable in clear by everyone who can SELECT the table spreads into extracts, "
              "notebooks and logs; a column mask shows it only to those entitled to see it.",
    remediation="Attach a mask: `ALTER TABLE <catalog.schema.table> ALTER COLUMN <column> SET MASK "
                "<catalog.schema.mask_function>` (a SQL UDF returning the value only for an entitled group), "
                "or list the column in classification.unmasked_allowed with the reason.",
)
def test_UC_09_pii_columns_masked(workspace, baseline, findings):
    data = _uc(workspace)
    tags = workspace.data("uc_column_tags").get("tags") or {}
    pii_tags = {t.casefold() for t in baseline.get("classification.pii_tags") or []}
    patterns = [re.compile(p) for p in baseline.get("classification.pii_name_patterns") or []]
    allowed = baseline.get("classification.unmasked_allowed") or []
    for t in _maskable(data):
        for col in t.get("columns") or []:
            name = col.get("name")
            if not name or (col.get("mask") or {}).get("function_name"):
                continue
            full = f"{t['full_name']}.{name}"
            by_tag = sorted({a.get("tag_key") for a in tags.get(full) or []
                             if str(a.get("tag_key", "")).casefold() in pii_tags})
            by_name = [p.pattern for p in patterns if p.search(name)]
            if not (by_tag or by_name) or any(fnmatchcase(full, g) for g in allowed):
                continue
            why = ([f"tagged {', '.join(by_tag)}"] if by_tag else []) + \
                  ([f"name matches {by_name[0]!r}"] if by_name else [])
            findings.fail(resource_type="column", resource_id=full, resource_name=full, owner=t.get("owner"),
                          seen=f"PII ({'; '.join(why)}) with no column mask", expected="a column mask",
                          table_type=t.get("table_type"))


@pytest.mark.dbsec(
    id="UC-10", title="Row filters where required", severity="medium", scope="workspace",
    sections=["uc"], refs={"seeds": ["row-level security"]},
    rationale="Tables that mix data of several regions, tenants or teams must show each reader only their "
              "rows; the baseline names them.",
    remediation="Attach a row filter: `ALTER TABLE <catalog.schema.table> SET ROW FILTER "
                "<catalog.schema.filter_function> ON (<column>)` (a SQL UDF returning true for the rows the "
                "caller may see).",
)
def test_UC_10_row_filters_where_required(workspace, baseline, findings):
    data = _uc(workspace)
    required = baseline.get("classification.row_filter_required") or []
    if not required:
        pytest.skip("the baseline requires no row filter (classification.row_filter_required is empty)")
    for t in data.get("tables") or []:
        full = t.get("full_name") or ""
        if t.get("table_type") in VIEW_TYPES or not any(fnmatchcase(full, g) for g in required):
            continue
        if not (t.get("row_filter") or {}).get("function_name"):
            findings.fail(resource_type="table", resource_id=full, owner=t.get("owner"), seen="no row filter",
                          expected="a row filter (classification.row_filter_required)",
                          table_type=t.get("table_type"))


@pytest.mark.dbsec(
    id="UC-11", title="Catalogs isolated to their workspaces", severity="medium", scope="workspace",
    sections=["uc"], refs={"seeds": ["Databricks docs: bind a catalog to specific workspaces"]},
    rationale="An OPEN catalog is reachable from every workspace on the metastore, so a grant made for "
              "production data also works from a less protected dev or sandbox workspace.",
    remediation="Bind the catalog: `databricks catalogs update <name> --isolation-mode ISOLATED`, then "
                "`databricks workspace-bindings update <name> --json '{\"assign_workspaces\": [<workspace_id>]}'` "
                "(PATCH /api/2.1/unity-catalog/workspace-bindings/catalogs/{name}).",
)
def test_UC_11_catalogs_isolated_to_their_workspaces(workspace, baseline, findings):
    data = _uc(workspace)
    required = baseline.get("grants.isolated_catalogs") or []
    if not required:
        pytest.skip("the baseline names no catalog to isolate (grants.isolated_catalogs is empty)")
    for c in data.get("catalogs") or []:
        name = c.get("name") or ""
        if not any(fnmatchcase(name, g) for g in required):
            continue
        mode = c.get("isolation_mode")
        if mode != "ISOLATED":
            findings.fail(resource_type="catalog", resource_id=name, owner=c.get("owner"),
                          seen=f"isolation_mode {mode}" if mode else "isolation_mode unknown (not returned or "
                                                                      "not a value this tool knows)",
                          expected="isolation_mode ISOLATED, bound to its workspaces")


@pytest.mark.dbsec(
    id="UC-12", title="Delta Sharing recipient tokens expire", severity="high", scope="workspace",
    sections=["uc", "uc_recipients"], refs={"SAT": ["GOV-17", "GOV-18", "GOV-19"]},
    rationale="An open-sharing recipient authenticates with a bearer token: one that never expires, or works "
              "from any address, gives whoever holds the credential file the shared data for good.",
    remediation="Cap the lifetime: `databricks metastores update <metastore_id> --delta-sharing-scope "
                "INTERNAL_AND_EXTERNAL --delta-sharing-recipient-token-lifetime-in-seconds 7776000`; rotate "
                "recipient tokens: `databricks recipients rotate-token <name> 0` (POST "
                "/api/2.1/unity-catalog/recipients/{name}/rotate-token); restrict addresses: `databricks "
                "recipients update <name> --json '{\"ip_access_list\": {\"allowed_ip_addresses\": [\"203.0.113.0/24\"]}}'`.",
)
def test_UC_12_delta_sharing_recipient_credentials_expire(workspace, baseline, findings):
    data = _uc(workspace)
    max_days = baseline.get("sharing.max_token_days")
    m = data.get("metastore") or {}
    scope = m.get("delta_sharing_scope")
    if scope != "INTERNAL":
        lifetime = m.get("delta_sharing_recipient_token_lifetime_in_seconds")
        scope_text = f"delta_sharing_scope {scope}" if scope else "delta_sharing_scope unknown"
        expected = f"recipient token lifetime between 1 second and {max_days} days"
        seen = None
        if not isinstance(lifetime, int) or lifetime <= 0:
            seen = f"{scope_text}; recipient tokens never expire (lifetime {lifetime!r})"
        elif lifetime > max_days * 86400:
            seen = f"{scope_text}; recipient token lifetime {lifetime / 86400:.0f} days"
        if seen:
            findings.fail(resource_type="metastore", resource_id=m.get("metastore_id"), resource_name=m.get("name"),
                          owner=m.get("owner"), seen=seen, expected=expected)
    now_ms = workspace.now.timestamp() * 1000
    for r in workspace.data("uc_recipients").get("recipients") or []:
        auth = r.get("authentication_type")
        if auth in TOKENLESS_AUTH:
            continue
        name = r.get("name") or r.get("id") or "?"
        how = "TOKEN" if auth == "TOKEN" else f"authentication_type {auth!r} (unknown: judged as TOKEN)"
        if not (r.get("ip_access_list") or {}).get("allowed_ip_addresses"):
            findings.fail(resource_type="recipient", resource_id=name, owner=r.get("owner"),
                          seen=f"{how} recipient with no IP access list", expected="an IP access list",
                          activated=r.get("activated"))
        for tok in r.get("tokens") or []:
            expiry = tok.get("expiration_time")
            if isinstance(expiry, int) and 0 < expiry <= now_ms:
                continue  # expired: no longer usable
            created = tok.get("created_at")
            if not isinstance(expiry, int) or expiry <= 0:
                seen = "token never expires"
            elif isinstance(created, int) and (expiry - created) / DAY_MS > max_days:
                seen = f"token lifetime {(expiry - created) / DAY_MS:.0f} days"
            else:
                continue
            findings.fail(resource_type="recipient_token", resource_id=tok.get("id") or f"{name}/?",
                          resource_name=f"token of recipient {name}", owner=r.get("owner"),
                          seen=f"{how} recipient: {seen}", expected=f"a token expiring within {max_days} days",
                          recipient=name, created=day(created) if isinstance(created, int) else None,
                          expires=day(expiry) if isinstance(expiry, int) and expiry > 0 else "never")


@pytest.mark.dbsec(
    id="UC-13", title="System audit tables enabled", severity="high", scope="workspace",
    sections=["uc_system_schemas"], refs={"SAT": ["GOV-34"]},
    rationale="The `system.access` schema holds the audit log and lineage tables: without it nobody can "
              "query who read or changed what, during an investigation or a review.",
    remediation="Enable it (account or metastore admin): `databricks system-schemas enable <metastore_id> "
                "access` (PUT /api/2.1/unity-catalog/metastores/{metastore_id}/systemschemas/access), then "
                "grant SELECT on system.access to the security team.",
)
def test_UC_13_system_audit_tables_enabled(workspace, findings):
    data = workspace.data("uc_system_schemas")
    _skip_without_metastore(data)
    mid = data["assignment"]["metastore_id"]
    access = next((s for s in data.get("schemas") or [] if s.get("schema") == "access"), None)
    if access is None:
        seen = "system schema access not offered on this metastore"
    elif access.get("state") in SYSTEM_SCHEMA_ENABLED:
        return
    else:
        seen = f"system schema access state {access.get('state') or 'empty (AVAILABLE)'}"
    findings.fail(resource_type="system_schema", resource_id=f"{mid}/access", resource_name="system.access",
                  seen=seen, expected="ENABLE_COMPLETED")
