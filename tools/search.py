"""Search a document collection and return passages with their sources, so an agent can cite.

Data flow: query -> any LangChain retriever (``SEARetriever`` over a Chroma collection of
ours: hybrid dense + BM25) -> the top ``k`` documents -> numbered passages as the tool's text
(document text neutralised: it is data, never instructions) + the same passages as a
structured artifact (number, source, page, text) for the application.
"""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.callbacks import CallbackManagerForToolRun
from langchain_core.retrievers import BaseRetriever
from langchain_core.tools import BaseTool, ToolException
from pydantic import BaseModel, ConfigDict, Field

from sealion_agents.qa.packing import escape_document_text

__all__ = ["DocumentSearch", "DocumentSearchInput"]

MAX_QUERY = 2_000


class DocumentSearchInput(BaseModel):
    """Arguments of the document search."""

    query: str = Field(description="What to look for, in any language.")


class DocumentSearch(BaseTool):
    """Finds passages in the user's documents; each comes with its source to cite."""

    name: str = "search_documents"
    description: str = (
        "Search the user's documents. Returns numbered passages, each with its source file "
        "(and page); cite them as [n]. Works across Southeast Asian languages."
    )
    args_schema: type[BaseModel] = DocumentSearchInput
    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact"
    handle_tool_error: bool = True
    retriever: BaseRetriever = Field(exclude=True)
    """Where passages come from (e.g. ``SEARetriever(store=open_store(...))``)."""
    k: int = Field(default=4, ge=1, le=50)
    """Most passages returned."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    def _run(
        self,
        query: str,
        run_manager: CallbackManagerForToolRun | None = None,
        **_: Any,
    ) -> tuple[str, list[dict[str, Any]]]:
        text = query.strip()
        if not text:
            raise ToolException("the query is empty: say what to look for")
        if len(text) > MAX_QUERY:
            raise ToolException(f"the query is longer than {MAX_QUERY} characters")
        callbacks = run_manager.get_child() if run_manager else None
        documents = self.retriever.invoke(text, {"callbacks": callbacks})[: self.k]
        passages: list[dict[str, Any]] = [
            {
                "number": number,
                "source": str(doc.metadata.get("source", "")),
                "page": doc.metadata.get("page"),
                "text": doc.page_content,
            }
            for number, doc in enumerate(documents, start=1)
        ]
        if not passages:
            return "No passage matches this query.", []
        blocks = []
        for passage in passages:
            where = escape_document_text(passage["source"]) or "unknown source"
            if passage["page"] is not None:
                where += f", page {passage['page']}"
            blocks.append(
                f"[{passage['number']}] ({where})\n{escape_document_text(passage['text'])}"
            )
        return "\n\n".join(blocks), passages
