"""docs/troubleshooting.md has a section for every alert of the chart and every reason a
Destination can show, and every runbook_url and link of the page lands on one."""

from __future__ import annotations

import re
from pathlib import Path

from destination_operator.api.status import FAILURE_REASONS, Reason

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "troubleshooting.md"
RULE = ROOT / "charts" / "destination-operator" / "templates" / "prometheusrule.yaml"
# The reasons that are not failures but still leave a Destination unverified.
WAITING = {Reason.Pending, Reason.Verifying, Reason.Retrying, Reason.Disabled, Reason.Archived}


def anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown text (outside code blocks)."""
    text = re.sub(r"^```.*?^```", "", markdown, flags=re.MULTILINE | re.DOTALL)
    found = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *$", text, re.MULTILINE):
        found.add(re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-"))
    return found


def test_every_alert_and_reason_has_a_section() -> None:
    sections = anchors(PAGE.read_text(encoding="utf-8"))
    template = RULE.read_text(encoding="utf-8")
    alerts = re.findall(r"- alert: (\w+)", template)
    runbooks = re.findall(r"runbook_url: \{\{ \$runbook \}\}#([\w-]+)", template)
    assert len(alerts) >= 8 and len(runbooks) == len(alerts)
    assert runbooks == [alert.lower() for alert in alerts]
    assert sorted(set(runbooks) - sections) == []
    reasons = {reason.lower() for reason in FAILURE_REASONS | WAITING}
    assert sorted(reasons - sections) == []


def test_the_links_inside_the_page_land_on_sections() -> None:
    text = PAGE.read_text(encoding="utf-8")
    links = re.findall(r"\]\(#([\w-]+)\)", text)
    assert len(links) > 20
    assert sorted(set(links) - anchors(text)) == []


def test_anchors_are_computed_as_github_does() -> None:
    assert anchors("## Alerts\n### DestinationNotReady\n```sh\n# not a heading\n```\n") == {
        "alerts",
        "destinationnotready",
    }
