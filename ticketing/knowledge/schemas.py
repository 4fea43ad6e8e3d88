"""What an editor sends for an article, validated (Chinese messages via the API's error shape)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ticketing.knowledge.models import SIZE_LABELS, ArticleKind, SizeBand

KIND_WORDS: dict[str, str] = {
    "办事指南": ArticleKind.guide,
    "政策": ArticleKind.policy,
    "常见问答": ArticleKind.faq,
    "通知": ArticleKind.notice,
    **{k.value: k.value for k in ArticleKind},
}
SIZE_WORDS: dict[str, str] = {  # 大型/大, 中型/中, … (SIZE_LABELS) and the values themselves
    **{label: band for band, label in SIZE_LABELS.items()},
    **{label[0]: band for band, label in SIZE_LABELS.items()},
    **{s.value: s.value for s in SizeBand},
}
Word = Annotated[str, Field(min_length=1, max_length=50)]


class Link(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=200)
    url: str = Field(pattern=r"^https?://\S+$", max_length=1000)


class Attachment(BaseModel):
    """Metadata of an attached file (the file itself is kept by whoever serves the URL)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    url: str = Field(pattern=r"^(https?://|/)\S+$", max_length=1000)
    size: int | None = Field(default=None, ge=0)
    mime: str | None = Field(default=None, max_length=100)


class ArticleIn(BaseModel):
    """A whole article as an editor submits it (create and edit)."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200)
    summary: str = Field(default="", max_length=500)
    body: str = Field(default="", max_length=100_000)  # rich text, sanitised on save
    kind: str
    department_code: str = Field(min_length=1, max_length=32)
    categories: list[Word] = Field(default_factory=list, max_length=20)
    keywords: list[Word] = Field(default_factory=list, max_length=50)
    issuer: str | None = Field(default=None, max_length=100)
    doc_number: str | None = Field(default=None, max_length=100)
    links: list[Link] = Field(default_factory=list, max_length=20)
    attachments: list[Attachment] = Field(default_factory=list, max_length=20)
    effective_from: date | None = None
    expires_on: date | None = None
    apply_from: date | None = None
    apply_until: date | None = None
    industries: list[
        Annotated[str, Field(pattern=r"^[A-T]?\d{0,4}$", min_length=1, max_length=5)]
    ] = Field(default_factory=list, max_length=50)
    size_bands: list[str] = Field(default_factory=list, max_length=4)
    regions: list[Word] = Field(default_factory=list, max_length=30)
    audiences: list[Word] = Field(default_factory=list, max_length=10)
    tags: list[Word] = Field(default_factory=list, max_length=30)
    is_public: bool = True

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        kind = KIND_WORDS.get(str(v).strip())
        if kind is None:
            raise ValueError("类型必须是 办事指南、政策、常见问答 或 通知")
        return str(kind)

    @field_validator("size_bands")
    @classmethod
    def _sizes(cls, v: list[str]) -> list[str]:
        out = []
        for s in v:
            band = SIZE_WORDS.get(str(s).strip())
            if band is None:
                raise ValueError("企业规模必须是 大型、中型、小型 或 微型")
            out.append(str(band))
        return list(dict.fromkeys(out))

    @field_validator("title", "summary")
    @classmethod
    def _strip(cls, v: str) -> str:
        return v.strip()

    @model_validator(mode="after")
    def _dates(self) -> ArticleIn:
        if self.effective_from and self.expires_on and self.expires_on < self.effective_from:
            raise ValueError("失效日期不能早于生效日期")
        if self.apply_from and self.apply_until and self.apply_until < self.apply_from:
            raise ValueError("申报截止日期不能早于申报开始日期")
        if not self.title:
            raise ValueError("标题不能为空")
        return self

    def stored(self) -> dict[str, Any]:
        """The fields as model columns (links and attachments as plain dicts)."""
        data = self.model_dump()
        data["links"] = [link.model_dump() for link in self.links]
        data["attachments"] = [a.model_dump(exclude_none=True) for a in self.attachments]
        return data
