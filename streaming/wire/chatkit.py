"""ChatKit's wire: a run's events as ChatKit thread stream events, for the self-hosted
ChatKit endpoint (`openai-chatkit`'s server serializes them to SSE itself).

The agent's steps become a ChatKit workflow item, as `chatkit.agents` shows an agent run:
its reasoning a thought task that streams, each tool call a task that shows the call, then
its result; the workflow is done (collapsed, with its duration) when the reply's text
begins. It is dated just before the reply, so that it sorts above it.
"""

from datetime import datetime, timedelta

from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageContentPartAdded,
    AssistantMessageContentPartDone,
    AssistantMessageContentPartTextDelta,
    AssistantMessageItem,
    CustomTask,
    DurationSummary,
    ErrorEvent,
    ThoughtTask,
    ThreadItemAddedEvent,
    ThreadItemDoneEvent,
    ThreadItemUpdatedEvent,
    ThreadStreamEvent,
    Workflow,
    WorkflowItem,
    WorkflowTaskAdded,
    WorkflowTaskUpdated,
)

from ..events import STEP_TYPES, Event, failure_text, is_delta, is_terminal


class ChatKitReply:
    """One assistant item in a ChatKit thread, following the run that produces it."""

    def __init__(self, item: AssistantMessageItem) -> None:
        self.item = item
        self.parts: list[str] = []  # the text so far
        self.workflow: WorkflowItem | None = None  # the agent's steps, while they are shown live
        self.tasks: dict[str, int] = {}  # tool call id (or "thought") -> its task's index
        self.calls: dict[str, tuple[str, str]] = {}  # tool call id -> (name, arguments so far)
        self.workflows = 0  # how many workflows this reply has shown (steps between texts)

    def opening(self) -> list[ThreadStreamEvent]:
        """The item, and its (empty) text part, before the run's events."""
        return [
            ThreadItemAddedEvent(item=self.item),
            ThreadItemUpdatedEvent(
                item_id=self.item.id,
                update=AssistantMessageContentPartAdded(
                    content_index=0, content=AssistantMessageContent(text="")
                ),
            ),
        ]

    def events(self, event: Event) -> list[ThreadStreamEvent]:
        """ChatKit's events for one of the run's events."""
        if event["type"] in STEP_TYPES:
            return self._step(event)
        if is_delta(event):
            ending = self._end_workflow()
            self.parts.append(event["text"])
            update = AssistantMessageContentPartTextDelta(content_index=0, delta=event["text"])
            return [*ending, ThreadItemUpdatedEvent(item_id=self.item.id, update=update)]
        if not is_terminal(event):
            return []
        ending = self._end_workflow()
        error = failure_text(event)
        if error is None:
            return [*ending, *self._done()]
        done = self._done() if self.parts else []
        return [*ending, *done, ErrorEvent(code="custom", message=error, allow_retry=True)]

    def _step(self, event: Event) -> list[ThreadStreamEvent]:
        out: list[ThreadStreamEvent] = []
        if self.workflow is None:
            self.workflows += 1
            self.workflow = WorkflowItem(
                id=f"{self.item.id}-steps-{self.workflows}", thread_id=self.item.thread_id,
                created_at=self.item.created_at - timedelta(milliseconds=1),
                workflow=Workflow(type="reasoning" if event["type"] == "reasoning" else "custom", tasks=[], expanded=True),
            )
            out.append(ThreadItemAddedEvent(item=self.workflow))
        kind = event["type"]
        if kind == "reasoning":
            key, text = "thought", event["text"]  # type: ignore[typeddict-item]
            if key in self.tasks:
                task = self.workflow.workflow.tasks[self.tasks[key]]
                assert isinstance(task, ThoughtTask)
                return [*out, self._task(key, ThoughtTask(content=task.content + text))]
            return [*out, self._task(key, ThoughtTask(content=text.lstrip()))]
        call_id: str = event["call_id"]  # type: ignore[typeddict-item]
        if kind == "tool_call":
            self.calls[call_id] = (event["name"], "")  # type: ignore[typeddict-item]
            return [*out, self._task(call_id, self._call_task(call_id, status="loading"))]
        if kind == "tool_arguments" and call_id in self.calls:
            name, arguments = self.calls[call_id]
            self.calls[call_id] = (name, arguments + event["text"])  # type: ignore[typeddict-item]
            return out  # shown with the result: a task per argument piece would be noise
        if kind == "tool_result" and call_id in self.calls:
            result = ("Failed: " if event["error"] else "") + event["output"]  # type: ignore[typeddict-item]
            return [*out, self._task(call_id, self._call_task(call_id, status="complete", result=result))]
        return out

    def _call_task(self, call_id: str, *, status: str, result: str | None = None) -> CustomTask:
        name, arguments = self.calls[call_id]
        content = f"{name}({arguments})" + (f"\n→ {result}" if result is not None else "")
        return CustomTask(title=f"Tool: {name}", icon="bolt", content=content, status_indicator=status)  # type: ignore[arg-type]

    def _task(self, key: str, task: ThoughtTask | CustomTask) -> ThreadStreamEvent:
        assert self.workflow is not None
        tasks = self.workflow.workflow.tasks
        if key in self.tasks:
            tasks[self.tasks[key]] = task
            return ThreadItemUpdatedEvent(
                item_id=self.workflow.id, update=WorkflowTaskUpdated(task=task, task_index=self.tasks[key])
            )
        self.tasks[key] = len(tasks)
        tasks.append(task)
        return ThreadItemUpdatedEvent(
            item_id=self.workflow.id, update=WorkflowTaskAdded(task=task, task_index=self.tasks[key])
        )

    def _end_workflow(self) -> list[ThreadStreamEvent]:
        """The steps are over (the text begins, or the run ended): the workflow is done."""
        if self.workflow is None:
            return []
        workflow, self.workflow = self.workflow, None
        self.tasks.clear()
        elapsed = datetime.now(workflow.created_at.tzinfo) - workflow.created_at
        workflow.workflow.summary = DurationSummary(duration=max(0, int(elapsed.total_seconds())))
        workflow.workflow.expanded = False
        return [ThreadItemDoneEvent(item=workflow)]

    def _done(self) -> list[ThreadStreamEvent]:
        content = AssistantMessageContent(text="".join(self.parts))
        return [
            ThreadItemUpdatedEvent(
                item_id=self.item.id,
                update=AssistantMessageContentPartDone(content_index=0, content=content),
            ),
            ThreadItemDoneEvent(item=self.item.model_copy(update={"content": [content]})),
        ]
