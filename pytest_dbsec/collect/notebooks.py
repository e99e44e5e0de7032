"""Workspace code: notebooks and workspace files scanned for credentials, and the code jobs run.

Two sections:

* ``notebooks`` (SEC-03): every notebook and workspace file is listed (directories and repos walked
  breadth-first), then the most recently modified ones are exported and scanned for credential
  patterns, up to ``EXPORT_LIMIT``. The source is scanned here, at collection time, and thrown away:
  the section keeps each object's path and the *redacted* matches (kind, line, 4-character preview),
  never the code. It records how many objects were found, scanned and could not be read, so that a
  control can say when a scan was incomplete instead of passing silently.
* ``job_code`` (JOB-04): the notebooks and workspace files that job tasks and pipelines run, with
  their permissions (who can edit the code a job runs as its run_as identity).
"""

from __future__ import annotations

import base64
import posixpath

from databricks.sdk.errors import DatabricksError, NotFound
from databricks.sdk.service.workspace import ExportFormat

from ..credentials import scan_text
from . import describe_failure, section

# Most objects exported per workspace. Collectors do not read the baseline, so this is the ceiling;
# SEC-03 judges the first `secrets.scan_max_objects` of them (most recently modified first) and says
# when objects were left out.
EXPORT_LIMIT = 5000
# Larger objects are not exported (the export API refuses objects over 10 MB anyway).
MAX_EXPORT_BYTES = 10 * 1024 * 1024
# Workspace files with these extensions are binary or data, not code: listed, not scanned.
BINARY_EXTENSIONS = {
    ".whl", ".jar", ".egg", ".zip", ".gz", ".tgz", ".tar", ".bz2", ".xz", ".7z", ".parquet", ".avro", ".orc",
    ".delta", ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".ico", ".svg", ".pdf", ".pkl", ".pickle", ".joblib",
    ".pt", ".pth", ".h5", ".onnx", ".bin", ".so", ".dll", ".exe", ".class", ".pyc", ".db", ".sqlite",
    ".xlsx", ".xls", ".docx", ".pptx", ".mp3", ".mp4", ".wav",
}
# Workspace files whose unquoted `name=value` / `name: value` lines count as assignments
CONFIG_EXTENSIONS = {".env", ".properties", ".yaml", ".yml", ".cfg", ".ini", ".conf", ".toml", ".sh", ".bash"}


def _ext(path: str) -> str:
    base = posixpath.basename(path).lower()
    if base.startswith(".env"):
        return ".env"
    return posixpath.splitext(base)[1]


def _tree(w, ctx) -> tuple[list[dict], list[dict]]:
    """Every object of the workspace tree (folders, notebooks, files, repos), walked level by level
    from ``/`` with each level's listings concurrent; returns (objects, listing errors) and raises if
    the root cannot be listed. Read once per run: the credential scan and the tree's ACLs share it."""

    def walk():
        objects: list[dict] = []
        errors: list[dict] = []
        level, first = ["/"], True
        while level:
            def list_dir(path):
                try:
                    return path, [o.as_dict() for o in w.workspace.list(path)], None
                except DatabricksError as e:
                    if first:
                        raise
                    return path, [], e

            next_level: list[str] = []
            for path, children, err in ctx.fan_out(list_dir, level):
                if err is not None:
                    errors.append({"path": path, "reason": describe_failure(err, None)})
                    continue
                for o in children:
                    if o.get("path") == path:  # a listing that names the folder itself
                        continue
                    objects.append(o)
                    if o.get("object_type") in ("DIRECTORY", "REPO") and o.get("path"):
                        next_level.append(o["path"])
            first = False
            level = sorted(set(next_level))
        return objects, errors

    return ctx.once(("workspace tree", w.config.host), walk)


@section("notebooks", "workspace", title="notebooks and workspace files scanned for credentials (redacted)")
def notebooks(w, ctx):
    tree, listing_errors = _tree(w, ctx)
    objects = [o for o in tree if o.get("object_type") in ("NOTEBOOK", "FILE")]
    scannable, binary = [], 0
    for o in objects:
        if o.get("object_type") == "FILE" and _ext(o.get("path", "")) in BINARY_EXTENSIONS:
            binary += 1
        else:
            scannable.append(o)
    # most recently modified first: with a limit, the code people are working on now is scanned
    scannable.sort(key=lambda o: (-(o.get("modified_at") or 0), o.get("path", "")))
    to_export = [o for o in scannable if (o.get("size") or 0) <= MAX_EXPORT_BYTES][:EXPORT_LIMIT]
    too_large = [o for o in scannable if (o.get("size") or 0) > MAX_EXPORT_BYTES]

    def export(o):
        fmt = ExportFormat.SOURCE if o.get("object_type") == "NOTEBOOK" else ExportFormat.AUTO
        try:
            content = w.workspace.export(o["path"], format=fmt).content or ""
        except DatabricksError as e:
            return None, describe_failure(e, None)
        try:
            text = base64.b64decode(content).decode("utf-8", errors="replace")
        except (ValueError, TypeError) as e:
            return None, f"the export could not be decoded: {e}"
        config = o.get("object_type") == "FILE" and _ext(o["path"]) in CONFIG_EXTENSIONS
        # the source is scanned here and dropped: only redacted matches are kept
        return [m.to_json() for m in scan_text(text, config=config)], None

    scanned, unreadable = [], []
    for o, (matches, error) in zip(to_export, ctx.fan_out(export, to_export)):
        entry = {"path": o.get("path"), "object_id": o.get("object_id"), "object_type": o.get("object_type"),
                 "modified_at": o.get("modified_at")}
        if error is not None:
            unreadable.append({**entry, "reason": error})
        else:
            scanned.append({**entry, "matches": matches})
    unreadable += [{"path": o.get("path"), "object_id": o.get("object_id"), "object_type": o.get("object_type"),
                    "reason": f"larger than {MAX_EXPORT_BYTES // (1024 * 1024)} MB, not exported"} for o in too_large]
    return {
        "found": len(scannable),  # notebooks and (non-binary) files listed
        "binary_files": binary,  # listed but not code: not scanned
        "export_limit": EXPORT_LIMIT,
        "scanned": scanned,  # in scan order (most recently modified first)
        "unreadable": unreadable,  # could not be exported: not scanned
        "listing_errors": listing_errors,  # folders that could not be listed: their content is unknown
    }


def _code_paths(jobs_data: dict) -> dict[str, list[dict]]:
    """Workspace paths of the code each job task / pipeline library runs -> who runs it."""
    out: dict[str, list[dict]] = {}

    def add(path, **ref):
        if isinstance(path, str) and path.startswith("/"):
            out.setdefault(path, []).append(ref)

    def tasks_of(task_list):
        for t in task_list or []:
            yield t
            nested = (t.get("for_each_task") or {}).get("task")
            if isinstance(nested, dict):
                yield from tasks_of([nested])

    for j in jobs_data.get("jobs") or []:
        settings = j.get("settings") or {}
        for t in tasks_of(settings.get("tasks")):
            # a task's code comes from the workspace unless its source (default: GIT when the job
            # has a git_source) says GIT; code in Git is edited outside Databricks
            default = "GIT" if settings.get("git_source") else "WORKSPACE"
            for task_type, field in (("notebook_task", "notebook_path"), ("spark_python_task", "python_file")):
                body = t.get(task_type) or {}
                if (body.get("source") or default) == "WORKSPACE":
                    add(body.get(field), job_id=j.get("job_id"), task_key=t.get("task_key"))
    for p in jobs_data.get("pipelines") or []:
        for lib in (p.get("spec") or {}).get("libraries") or []:
            for kind in ("notebook", "file"):
                add((lib.get(kind) or {}).get("path"), pipeline_id=p.get("pipeline_id"))
    return out


def _repo_root(path: str) -> str | None:
    """/Repos/<folder>/<repo>/... -> /Repos/<folder>/<repo>"""
    parts = path.split("/")
    if len(parts) >= 4 and parts[1] == "Repos":
        return "/".join(parts[:4])
    if len(parts) >= 5 and parts[1] == "Workspace" and parts[2] == "Repos":
        return "/".join(parts[:5])
    return None


@section("job_code", "workspace", needs=("jobs",),
         title="the notebooks and files jobs and pipelines run, with their permissions")
def job_code(w, ctx):
    paths = _code_paths(ctx.data("jobs"))
    repos = sorted({r for r in (_repo_root(p) for p in paths) if r})

    def status(path):
        lookup = path[len("/Workspace"):] if path.startswith("/Workspace/") else path
        try:
            return w.workspace.get_status(lookup).as_dict()
        except NotFound:
            return None

    def acl(info):
        if info is None or info.get("object_id") is None:
            return None
        otype = {"NOTEBOOK": "notebooks", "FILE": "files", "REPO": "repos", "DIRECTORY": "directories"}.get(
            info.get("object_type"))
        if otype is None:
            return None
        return w.api_client.do("GET", f"/api/2.0/permissions/{otype}/{info['object_id']}")

    code = []
    infos = ctx.fan_out(status, sorted(paths))
    acls = ctx.fan_out(acl, infos)
    for path, info, a in zip(sorted(paths), infos, acls):
        code.append({"path": path, "used_by": paths[path], "object": info, "acl": a, "repo": _repo_root(path)})
    repo_infos = ctx.fan_out(status, repos)
    repo_acls = ctx.fan_out(acl, repo_infos)
    return {"code": code,
            "repos": [{"path": r, "object": i, "acl": a} for r, i, a in zip(repos, repo_infos, repo_acls)]}


# Most workspace objects (folders, notebooks, files, repos) whose ACL is read per workspace: one call
# each. A tree larger than this is read up to the cap (folders first, level by level: their entries are
# inherited by everything below) and the section says it is incomplete; answers resting on it say so.
TREE_ACL_LIMIT = 20000
TREE_ACL_TYPES = {"DIRECTORY": "directories", "NOTEBOOK": "notebooks", "FILE": "files", "REPO": "repos"}


@section("workspace_acls", "workspace",
         title="permissions of folders, notebooks, files and repos (the whole workspace tree, capped)")
def workspace_acls(w, ctx):
    """The workspace tree walked level by level from ``/`` (a folder's listing failing is recorded, the
    root's failing fails the section), then ``GET /api/2.0/permissions/{type}/{object_id}`` for each
    object up to TREE_ACL_LIMIT. Entries a folder passes down come back flagged ``inherited`` with
    ``inherited_from_object``. A denied permissions read fails the section: a partial view of who can
    edit code must not pass as a complete one."""
    objects, listing_errors = _tree(w, ctx)
    wanted = [o for o in objects if o.get("object_type") in TREE_ACL_TYPES and o.get("object_id") is not None]
    read = wanted[:TREE_ACL_LIMIT]  # breadth-first order: folders near the root come first

    def get(o):
        try:
            return w.api_client.do("GET", f"/api/2.0/permissions/{TREE_ACL_TYPES[o['object_type']]}/{o['object_id']}")
        except NotFound:
            return None  # deleted between the listing and this call

    out, vanished = [], []
    for o, acl in zip(read, ctx.fan_out(get, read)):
        entry = {"path": o.get("path"), "object_type": o.get("object_type"), "object_id": o.get("object_id"),
                 "permissions_type": TREE_ACL_TYPES[o["object_type"]]}
        if acl is None:
            vanished.append(entry)
        else:
            out.append({**entry, "acl": acl})
    return {
        "objects": out,
        "found": len(wanted),  # objects listed that have ACLs
        "limit": TREE_ACL_LIMIT,
        "truncated": len(wanted) > TREE_ACL_LIMIT,
        "listing_errors": listing_errors,  # folders that could not be listed: their content is unknown
        "vanished": vanished,
    }
