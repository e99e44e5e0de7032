"""The credential detector: what it finds, what it leaves alone, and that it never repeats a secret."""

from __future__ import annotations

import pytest

from pytest_dbsec.credentials import (ELLIPSIS, entropy, group_by_location, is_placeholder, redact, scan_text,
                                      scan_value, scrub_list, scrub_mapping)

PAT = "dapi" + "0123456789abcdef" * 2
AKIA = "AKIA" + "Q3ZT7XW2LMN4P5RS"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzyxw0987+Q"  # 40 characters
AZURE_KEY = "Zm9vYmFy" * 10 + "abcdefgh" + "=="  # 90 base64 characters
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7\n-----END RSA PRIVATE KEY-----"


def kinds(matches) -> list[str]:
    return [m.kind for m in matches]


@pytest.mark.parametrize("code, kind, line", [
    (f'token = "{PAT}"', "databricks_pat", 1),
    (f'x = 1\nheaders = {{"Authorization": "Bearer {PAT}-2"}}', "databricks_pat", 2),
    ('oauth = "dose' + "ab12" * 8 + '"', "databricks_oauth", 1),
    (f's3 = boto3.client("s3", aws_access_key_id="{AKIA}")', "aws_access_key_id", 1),
    ('sts_key = "ASIA' + "ABCDEFGH23456789" + '"', "aws_access_key_id", 1),
    (f'aws_secret_access_key = "{AWS_SECRET}"', "aws_secret_key", 1),
    (f'conn = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={AZURE_KEY};EndpointSuffix=core.windows.net"',
     "azure_storage_key", 1),
    ('url = "https://acct.blob.core.windows.net/c?sv=2022-11-02&ss=b&sig=' + "aB3dE6gH9jK2mN5pQ8sT1vW4" + '%3D"',
     "azure_sas_token", 1),
    ('client_secret = "' + "Abc8Q~" + "x1Y2z3W4v5U6t7S8r9Q0p1O2n3M4l5K6j" + '"', "azure_client_secret", 1),
    ('spark.conf.set("fs.azure.account.oauth2.client.secret", "Xq9fLmZ2vP8rT4kW7yB1nC6d")', "azure_client_secret", 1),
    ('sa = {\n  "type": "service_account",\n  "project_id": "p"\n}', "gcp_service_account", 2),
    (f'key = """{PEM}"""', "private_key", 1),
    ('val url = "jdbc:postgresql://db:5432/sales?user=report&password=Summer2024x"', "password_in_url", 1),
    ('odbc = "Driver={ODBC};Server=db;UID=sa;PWD=Tr0ub4dor&3"', "password_in_url", 1),
    ('engine = create_engine("postgresql://svc:S3cretPass@db.example.com/app")', "password_in_url", 1),
    ('DB_PASSWORD = "hunter2hunter2"', "password", 1),
    ('.option("password", "S3cr3tPassw0rd!")', "password", 1),
    ("CREATE CONNECTION pg TYPE postgresql OPTIONS (host 'h', user 'u', password 'Pa55word99')", "password", 1),
    ('api_key = "a8Fz3kQ9LmP2xR7vT1wYbN4c"', "generic_secret", 1),
    ('{"slack_token": "xoxb-2384792837-2938749283-aZ9bY8cX7dW6"}', "generic_secret", 1),
])
def test_finds_credentials_in_code(code, kind, line):
    found = scan_text(code)
    assert kind in kinds(found), found
    m = next(m for m in found if m.kind == kind)
    assert m.line == line
    assert m.preview.endswith(ELLIPSIS) and len(m.preview) <= 5


@pytest.mark.parametrize("code", [
    'token = dbutils.secrets.get(scope="etl-prod", key="crm-api-token")',
    'password = dbutils.secrets.get("jdbc", "password")',
    'password = get_password()',
    'conn = connect(host=h, password=pw)',
    'url = f"jdbc:postgresql://db/x?user={user}&password={pw}"',
    'url = "jdbc:postgresql://db/x?user=" + u + "&password=" + pw',
    'headers = {"Authorization": f"Bearer {DATABRICKS_TOKEN}"}',
    'password = "changeme"',
    'password = "<your password>"',
    'api_key = "YOUR_API_KEY_HERE"',
    'token = "xxxxxxxxxxxxxxxxxxxxxxxxxxxx"',
    'secret = "${SECRET}"',
    'password = "********"',
    'spark.conf.set("fs.s3a.secret.key", "{{secrets/aws/secret}}")',
    'url = "jdbc:postgresql://db/x?user=u&password={{secrets/db/pw}}"',
    'token_endpoint = "https://login.microsoftonline.com/0123456789abcdef/oauth2/v2.0/token"',
    'model_name = "bert-base-uncased-finetuned-sst-2"',
    'tokenizer = AutoTokenizer.from_pretrained("distilbert-base-uncased")',
    'path = "abfss://container@account.dfs.core.windows.net/raw/2024/01/"',
    'df = spark.read.table("main.default.reference_countries")',
    'password_file = "/dbfs/secure/pw.txt"',
    'print("the token is stored in the secret scope")',
    'ssh = "ssh://git@github.com/corp/repo.git"',
    'commit = "4f2c9e1d7b3a6c5e8f0a1b2c3d4e5f6a7b8c9d0e"',
])
def test_leaves_references_placeholders_and_ordinary_code_alone(code):
    assert scan_text(code) == []


def test_unquoted_assignments_count_only_in_configuration_files():
    text = "user=report\npassword=Summer2024x\n"
    assert scan_text(text) == []  # in code, `password = x` is usually an expression
    found = scan_text(text, config=True)
    assert kinds(found) == ["password"] and found[0].line == 2 and found[0].name == "password"


def test_lines_and_one_match_per_secret():
    text = f"# Databricks notebook source\nimport os\n\nDATABRICKS_TOKEN = \"{PAT}\"\nkey = '{AKIA}'\n"
    found = scan_text(text)
    assert [(m.kind, m.line) for m in found] == [("databricks_pat", 4), ("aws_access_key_id", 5)]


@pytest.mark.parametrize("name, value, kind", [
    ("AWS_ACCESS_KEY_ID", AKIA, "aws_access_key_id"),
    ("AWS_SECRET_ACCESS_KEY", AWS_SECRET, "aws_secret_key"),
    ("spark.hadoop.fs.s3a.secret.key", AWS_SECRET, "aws_secret_key"),
    ("spark.hadoop.fs.azure.account.key.acct.dfs.core.windows.net", AZURE_KEY, "azure_storage_key"),
    ("DB_PASSWORD", "NotARealPassw0rd", "password"),
    ("SNOWFLAKE_URL", "snowflake://svc:NotARealPassw0rd@corp.snowflakecomputing.com/db", "password_in_url"),
    ("crm_api_token", PAT, "databricks_pat"),
    ("GCP_KEY", '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\\nMII"}', "private_key"),
])
def test_finds_credentials_in_config_values(name, value, kind):
    assert kind in kinds(scan_value(value, name))


@pytest.mark.parametrize("name, value", [
    ("MLFLOW_TRACKING_TOKEN", "{{secrets/ml/mlflow-token}}"),
    ("PYSPARK_PYTHON", "/databricks/python3/bin/python3"),
    ("PWD", "/home/ubuntu"),
    ("spark.databricks.acl.dfAclsEnabled", "false"),
    ("spark.sql.shuffle.partitions", "200"),
    ("crm_endpoint", "https://crm.corp.example.com/api"),
    ("DB_PASSWORD", "changeme"),
    ("DB_PASSWORD", ""),
    ("token_ttl", "3600"),
    ("API_TOKEN", "short"),
    ("date", "2024-01-01"),
    ("retries", 3),
])
def test_leaves_ordinary_config_values_alone(name, value):
    assert scan_value(value, name) == []


def test_scrub_replaces_the_value_and_records_only_location_and_preview():
    env = {"AWS_ACCESS_KEY_ID": AKIA, "OK": "{{secrets/s/k}}", "N": "1"}
    out: list[dict] = []
    scrub_mapping(env, "spark_env_vars", out, object_type="cluster", object_id="c1", object_name="etl")
    assert env["AWS_ACCESS_KEY_ID"] == "<redacted by pytest-dbsec: aws_access_key_id>"
    assert env["OK"] == "{{secrets/s/k}}" and env["N"] == "1"
    assert out == [{"object_type": "cluster", "object_id": "c1", "object_name": "etl",
                    "location": "spark_env_vars.AWS_ACCESS_KEY_ID", "kind": "aws_access_key_id",
                    "description": "AWS access key id", "preview": "AKIA" + ELLIPSIS, "name": "AWS_ACCESS_KEY_ID"}]
    args = ["--user", "svc", "--password", "Hunter2Hunter2", f"--token={PAT}", "--verbose"]
    scrub_list(args, "spark_python_task.parameters", out, object_type="job", object_id=1)
    assert args[:3] == ["--user", "svc", "--password"] and args[5] == "--verbose"
    assert "Hunter2" not in str(args) and PAT not in str(args)
    assert [m["location"] for m in out[1:]] == ["spark_python_task.parameters[3]", "spark_python_task.parameters[4]"]
    groups = group_by_location(out)
    assert [g["location"] for g in groups] == ["spark_env_vars.AWS_ACCESS_KEY_ID", "spark_python_task.parameters[3]",
                                               "spark_python_task.parameters[4]"]


def test_a_match_never_contains_the_secret():
    text = f'a = "{PAT}"\nb = "{AWS_SECRET}"\nc = "jdbc:x://h;password=Summer2024x"\naws_secret_access_key="{AWS_SECRET}"'
    for m in scan_text(text):
        assert len(m.preview) <= 5
        for secret in (PAT, AWS_SECRET, "Summer2024x"):
            assert secret not in str(m.to_json()) and secret[4:] not in m.preview


def test_redact_shows_at_most_a_quarter_and_four_characters():
    assert redact(PAT) == "dapi" + ELLIPSIS
    assert redact("Summer24") == "Su" + ELLIPSIS
    assert redact("abc") == ELLIPSIS


def test_placeholders_and_entropy():
    for p in ("xxx", "changeme", "<password>", "${DB_PW}", "$DB_PW", "{pw}", "%(pw)s", "your_token_here", "****", ""):
        assert is_placeholder(p), p
    for real in ("Summer2024x", "NotARealPassw0rd", AKIA):
        assert not is_placeholder(real), real
    assert entropy("aaaa") == 0 and entropy("abcd") == 2.0
    assert entropy("a8Fz3kQ9LmP2xR7vT1wYbN4c") > 4
