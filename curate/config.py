"""A curation pipeline as configured: its inputs, input format and steps (from YAML or `--steps`), and reading
its inputs as examples. Both engines (`curate.pipeline`, `curate.ray_engine`) take this configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from studio.errors import StudioError
from studio.readers import CsvMapping, ReadResult, read_inputs


class StepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    config: dict[str, Any] = Field(default_factory=dict)


class PipelineConfig(BaseModel):
    """A curation pipeline, as written in a YAML file:

        inputs: [sample_data/]          # files or folders (CLI arguments add to these)
        format: null                    # force one input format; null = detect per file
        csv_map: prompt=q,response=a    # CSV column mapping, when the defaults do not fit
        steps:
          - normalize
          - exact_dedupe
          - near_dedupe: {threshold: 0.8}
    """

    model_config = ConfigDict(extra="forbid")
    inputs: list[str] = Field(default_factory=list)
    format: str | None = None
    csv_map: str | None = None
    steps: list[StepSpec] = Field(default_factory=list)
    report: bool = True

    @field_validator("steps", mode="before")
    @classmethod
    def _steps_from_yaml(cls, value: Any) -> Any:
        specs = []
        for item in value or []:
            if isinstance(item, str):
                specs.append({"name": item})
            elif isinstance(item, dict) and "name" not in item and len(item) == 1:
                name, cfg = next(iter(item.items()))
                specs.append({"name": name, "config": cfg or {}})
            else:
                specs.append(item)
        return specs

    @classmethod
    def from_yaml(cls, path: str | Path) -> PipelineConfig:
        from studio.config import load_yaml_model

        return load_yaml_model(cls, path, what="pipeline config")

    @classmethod
    def from_step_list(cls, steps: str, **kwargs: Any) -> PipelineConfig:
        return cls(steps=[s.strip() for s in steps.split(",") if s.strip()], **kwargs)


def read_examples(config: PipelineConfig) -> ReadResult:
    result = read_inputs(config.inputs, fmt=config.format, csv_mapping=CsvMapping.parse(config.csv_map))
    if result.kind != "examples":
        raise StudioError(
            f"curate works on examples, but {', '.join(result.formats)} hold plain documents; "
            "use them with `studio synth grounded-qa` instead."
        )
    return result
