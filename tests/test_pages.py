"""Pages: the chat page's security headers and the assets it loads."""

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

pytestmark = pytest.mark.django_db


def test_the_chat_page_forbids_inline_scripts_and_foreign_code() -> None:
    response = Client().get("/")
    policy = dict(
        part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";") if part.strip()
    )
    assert policy["script-src"] == "'self'"
    assert policy["default-src"] == "'self'" and policy["object-src"] == "'none'"
    assert policy["connect-src"] == "'self'" and policy["frame-ancestors"] == "'none'"
    html = response.content.decode()
    assert "<script>" not in html and " on" not in html.split("<body", 1)[1].split(">", 1)[0]
    assert '<script type="module" src="/static/chat/' in html


def test_the_front_end_libraries_are_found_by_staticfiles() -> None:
    for path in (
        "vendor/marked/marked.esm.js",
        "vendor/dompurify/purify.es.mjs",
        "vendor/highlight/es/highlight.min.js",
        "vendor/highlight/styles/github.min.css",
    ):
        assert finders.find(path), path
