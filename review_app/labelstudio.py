"""The Label Studio bridge: push review items to a Label Studio project, pull annotations back as decisions.

Push creates (or updates) a project whose label config shows the conversation, a verdict (accept/reject,
hotkeys a/r), a corrected-response text area pre-filled through a prediction, a 1-5 rating and reason tags,
and imports one task per example (our id in `data.example_id`, our scores as the prediction's score).
Tasks already in the project are found by that id and never imported twice; annotations are never touched.

Pull reads every annotation, validates it against the project's *own* label config (Label Studio accepts a
choice that is not in the config, or a rating of 9, so we must check), quarantines invalid ones with the
reason, and records valid ones in the review store as decisions of reviewer `labelstudio:<annotator e-mail>`
with `source="labelstudio"` (never an app login's name); a corrected answer replaces only the stored item's
last answer, whatever the task's data says. The idempotency key is (project, annotation id, updated_at): pulling again changes
nothing, and an annotation edited in Label Studio replaces that reviewer's earlier Label Studio decision.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from studio.errors import StudioError

#: texts in, the same texts with personal data replaced out (curate.pii.PiiRedactor().redact_texts)
Redact = Callable[[list[str]], list[str]]

REASON_TAGS = ("incorrect", "incomplete", "unsafe", "off_topic", "contains_pii", "bad_tone", "policy_violation")
SOURCE = "labelstudio"
PREDICTION_VERSION = "finetune-studio"


def label_config(reasons: tuple[str, ...] = REASON_TAGS) -> str:
    tags = "\n".join(f'      <Choice value="{r}"/>' for r in reasons)
    return f"""<View>
  <Header value="Conversation"/>
  <Paragraphs name="dialogue" value="$dialogue" layout="dialogue" nameKey="role" textKey="content"/>
  <Header value="Verdict"/>
  <Choices name="verdict" toName="dialogue" choice="single-radio" required="true" showInline="true">
    <Choice value="accept" hotkey="a"/>
    <Choice value="reject" hotkey="r"/>
  </Choices>
  <Header value="Corrected response (edit it if it is nearly right)"/>
  <TextArea name="corrected" toName="dialogue" editable="true" maxSubmissions="1" rows="6"/>
  <Header value="Rating"/>
  <Rating name="rating" toName="dialogue" maxRating="5"/>
  <Header value="Reasons (on reject)"/>
  <Choices name="reasons" toName="dialogue" choice="multiple" showInline="true">
{tags}
  </Choices>
</View>"""


# ------------------------------------------------------------------------------------- config schema


@dataclass
class ConfigSchema:
    """What a label config allows: choices per Choices tag, max rating per Rating tag, TextArea names."""

    choices: dict[str, tuple[set[str], bool, bool]] = field(default_factory=dict)  # name -> (values, multiple, required)
    ratings: dict[str, int] = field(default_factory=dict)
    textareas: set[str] = field(default_factory=set)

    @classmethod
    def from_xml(cls, xml: str) -> ConfigSchema:
        schema = cls()
        for el in ET.fromstring(xml).iter():
            name = el.get("name")
            if el.tag == "Choices" and name:
                values = {c.get("value") for c in el.iter("Choice") if c.get("value") is not None}
                schema.choices[name] = (values, el.get("choice", "single") == "multiple", el.get("required") == "true")
            elif el.tag == "Rating" and name:
                schema.ratings[name] = int(el.get("maxRating", "5"))
            elif el.tag == "TextArea" and name:
                schema.textareas.add(name)
        return schema


class InvalidAnnotation(ValueError):
    """An annotation that does not fit the label config; its message is the quarantine reason."""


def parse_annotation(result: list[dict[str, Any]], schema: ConfigSchema) -> dict[str, Any]:
    """Annotation result → {verdict, rating, reasons, corrected}; raises InvalidAnnotation."""
    out: dict[str, Any] = {"verdict": None, "rating": None, "reasons": [], "corrected": None}
    for region in result or []:
        name, kind, value = region.get("from_name"), region.get("type"), region.get("value") or {}
        if name in schema.choices:
            allowed, multiple, _ = schema.choices[name]
            picked = value.get("choices")
            if not isinstance(picked, list) or not all(isinstance(p, str) for p in picked):
                raise InvalidAnnotation(f"'{name}' holds {picked!r}, not a list of choices")
            unknown = [p for p in picked if p not in allowed]
            if unknown:
                raise InvalidAnnotation(f"'{name}' choice {unknown[0]!r} is not in the label config ({', '.join(sorted(allowed))})")
            if not multiple and len(picked) > 1:
                raise InvalidAnnotation(f"'{name}' allows one choice, got {len(picked)}")
            if name == "verdict":
                out["verdict"] = picked[0] if picked else None
            elif name == "reasons":
                out["reasons"] = sorted(set(picked))
        elif name in schema.ratings:
            rating = value.get("rating")
            top = schema.ratings[name]
            if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= top:
                raise InvalidAnnotation(f"'{name}' is {rating!r}; the label config allows 1 to {top}")
            out["rating"] = rating
        elif name in schema.textareas:
            text = value.get("text")
            if not isinstance(text, list) or not all(isinstance(t, str) for t in text):
                raise InvalidAnnotation(f"'{name}' holds {text!r}, not a list of strings")
            out["corrected"] = "\n".join(text)
        else:
            raise InvalidAnnotation(f"result field {name!r} ({kind}) is not in the label config")
    if out["verdict"] is None:
        raise InvalidAnnotation("no verdict (accept or reject) was given")
    return out


# ---------------------------------------------------------------------------------------- connection


def connect(url: str, api_key: str):
    """A checked SDK client: wrong URL, server down and bad key each become one clear sentence."""
    import httpx
    from label_studio_sdk import LabelStudio
    from label_studio_sdk.core.api_error import ApiError

    if not api_key:
        raise StudioError("no Label Studio API key; set LABEL_STUDIO_API_KEY (it is never read from the command line).")
    client = LabelStudio(base_url=url.rstrip("/"), api_key=api_key, timeout=60)
    try:
        client.users.whoami()
    except httpx.ConnectError:
        raise StudioError(f"cannot reach Label Studio at {url}; is the server running (`studio labelstudio start`)?") from None
    except httpx.HTTPError as err:
        raise StudioError(f"Label Studio at {url} did not answer properly ({type(err).__name__}); check the URL.") from None
    except ApiError as err:
        if err.status_code in (401, 403):
            raise StudioError(f"Label Studio at {url} rejected the API key (HTTP {err.status_code}); "
                              "check LABEL_STUDIO_API_KEY (Account & Settings → Access Token).") from None
        raise StudioError(f"{url} does not look like a Label Studio server (HTTP {err.status_code} from "
                          "/api/current-user/whoami); check the URL.") from None
    except ValueError:
        raise StudioError(f"{url} does not look like a Label Studio server (its answer is not JSON); check the URL.") from None
    return client


def find_project(client, name: str):
    for project in client.projects.list(title=name):
        if project.title == name:
            return project
    return None


def ensure_project(client, name: str) -> tuple[Any, str]:
    """(project, "created" | "updated" | "unchanged"). An existing project gets our label config if it differs."""
    config = label_config()
    project = find_project(client, name)
    if project is None:
        return client.projects.create(title=name, label_config=config,
                                      description="Review queue from Fine-Tuning Data Studio"), "created"
    full = client.projects.get(id=project.id)
    if (full.label_config or "").strip() != config.strip():
        client.projects.update(id=project.id, label_config=config)
        return full, "updated"
    return full, "unchanged"


def require_project(client, name: str):
    project = find_project(client, name)
    if project is None:
        titles = sorted(p.title for p in client.projects.list())
        raise StudioError(f"Label Studio has no project named {name!r} (projects: {', '.join(titles) or 'none'}); "
                          "push to it first.")
    return client.projects.get(id=project.id)


def _response(messages: list[dict[str, str]]) -> str:
    answers = [m["content"] for m in messages if m["role"] == "assistant"]
    return answers[-1] if answers else ""


def annotator_name(email: str) -> str:
    """The review store's name for a Label Studio annotator: `labelstudio:<e-mail>`. App logins cannot hold ':',
    so an annotator never shares a name (and the decisions) of an app reviewer."""
    return f"{SOURCE}:{email}"


def task_payload(item: dict[str, Any], redact: Redact | None = None) -> dict[str, Any]:
    """One task: the conversation, our id, and a prediction pre-filling the corrected response with our scores.
    With `redact`, every turn is PII-redacted before it leaves for the server."""
    messages = item["messages"]
    if redact is not None:
        texts = redact([m["content"] for m in messages] + [item.get("source") or ""])
        messages = [{**m, "content": t} for m, t in zip(messages, texts, strict=False)]
        item = {**item, "source": texts[-1]}
    score = item.get("quality")
    prediction: dict[str, Any] = {
        "model_version": PREDICTION_VERSION,
        "result": [{"from_name": "corrected", "to_name": "dialogue", "type": "textarea",
                    "value": {"text": [_response(messages)]}}],
    }
    if score is not None:
        prediction["score"] = float(score)
    return {
        "data": {"example_id": item["id"], "dialogue": [{"role": m["role"], "content": m["content"]} for m in messages],
                 "origin": item.get("origin") or "real", "source": item.get("source") or "",
                 "scores": json.dumps(item.get("scores") or {}, sort_keys=True)},
        "predictions": [prediction],
    }


def _tasks(client, project_id: int, fields: str = "all"):
    return client.tasks.list(project=project_id, fields=fields, page_size=500)


def push(client, project_name: str, items: list[dict[str, Any]], redact: Redact | None = None) -> dict[str, Any]:
    """Create/update the project and import the items it does not hold yet (PII-redacted with `redact`, e.g.
    `curate.pii.PiiRedactor().redact_texts`, which the CLI passes). Returns counts."""
    project, state = ensure_project(client, project_name)
    present = {t.data.get("example_id") for t in _tasks(client, project.id, fields="task_only")}
    new = [task_payload(i, redact) for i in items if i["id"] not in present]
    if new:
        for start in range(0, len(new), 500):
            client.projects.import_tasks(id=project.id, request=new[start:start + 500], return_task_ids=True)
    return {"project_id": project.id, "project": state, "input": len(items), "imported": len(new),
            "already_present": len(items) - len(new)}


@dataclass
class PullResult:
    counts: dict[str, int]
    quarantine: list[dict[str, Any]]
    recorded: list[dict[str, Any]]


def pull(client, project_name: str, store) -> PullResult:
    """Record every valid annotation of the project as a review decision; quarantine the invalid ones."""
    project = require_project(client, project_name)
    schema = ConfigSchema.from_xml(project.label_config)
    emails = {u.id: u.email for u in client.users.list()}
    counts = {"annotations": 0, "recorded": 0, "already_recorded": 0, "quarantined": 0}
    quarantine: list[dict[str, Any]] = []
    recorded: list[dict[str, Any]] = []
    for task in _tasks(client, project.id):
        if not task.total_annotations:  # tasks.list(only_annotated=True) is ignored by the server
            continue
        example_id = (task.data or {}).get("example_id")
        messages = (task.data or {}).get("dialogue") or []
        for ann in task.annotations or []:
            ann = ann if isinstance(ann, dict) else ann.dict()
            counts["annotations"] += 1
            where = {"project": project_name, "task": task.id, "annotation": ann["id"], "example_id": example_id,
                     "annotator": annotator_name(emails.get(ann.get("completed_by"), f"user-{ann.get('completed_by')}"))}
            try:
                if ann.get("was_cancelled"):
                    parsed = {"verdict": "skip", "rating": None, "reasons": [], "corrected": None}
                else:
                    parsed = parse_annotation(ann.get("result") or [], schema)
                if not example_id:
                    raise InvalidAnnotation("the task has no example_id; it was not pushed by the studio")
                try:
                    item = store.get_item(example_id)
                except StudioError:
                    raise InvalidAnnotation(f"example {example_id} is not in the review store; load its data set first") from None
            except InvalidAnnotation as err:
                counts["quarantined"] += 1
                quarantine.append({**where, "reason": str(err), "result": ann.get("result")})
                continue
            edited = None
            if parsed["corrected"] is not None and parsed["corrected"].strip() != _response(messages).strip():
                # Only the corrected answer comes from Label Studio; every other turn is the store's own text,
                # so a Label Studio user cannot change the prompt that gets exported by editing the task data.
                edited = [dict(m) for m in item.messages]
                last = max((i for i, m in enumerate(edited) if m["role"] == "assistant"), default=None)
                if last is None:
                    edited.append({"role": "assistant", "content": parsed["corrected"]})
                else:
                    edited[last]["content"] = parsed["corrected"]
            key = f"{SOURCE}:{project.id}:{ann['id']}:{ann.get('updated_at')}"
            decision = store.record_decision(
                example_id, where["annotator"], parsed["verdict"], edited_messages=edited, rating=parsed["rating"],
                reasons=parsed["reasons"], seconds=ann.get("lead_time"), source=SOURCE, idempotency_key=key,
                comment=f"Label Studio project {project_name!r}, annotation {ann['id']}")
            if decision.get("created"):
                counts["recorded"] += 1
                recorded.append(decision)
            else:
                counts["already_recorded"] += 1
    return PullResult(counts=counts, quarantine=quarantine, recorded=recorded)
