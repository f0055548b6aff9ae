"""The agent: the LLM client, the tool-calling loop, the tools, and the task runner."""
