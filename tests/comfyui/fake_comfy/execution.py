"""A PromptExecutor with ComfyUI's output cache semantics: a node runs again
only when its inputs or its IS_CHANGED value change; reset() drops the cache."""
import json

import nodes


class PromptExecutor:
    def __init__(self, node_mappings=None):
        self.mappings = node_mappings if node_mappings is not None else nodes.NODE_CLASS_MAPPINGS
        self.reset()

    def reset(self):
        self.outputs = {}
        self.executed = []

    def _signature(self, node_id, prompt):
        node = prompt[node_id]
        cls = self.mappings[node["class_type"]]
        parts = [node["class_type"]]
        inputs = {}
        for k, v in node["inputs"].items():
            if isinstance(v, list):
                parts.append((k, self._signature(v[0], prompt)))
            else:
                inputs[k] = v
        if hasattr(cls, "IS_CHANGED"):
            parts.append(cls.IS_CHANGED(**inputs, unique_id=node_id))
        parts.append(json.dumps(inputs, sort_keys=True, default=str))
        return json.dumps(parts, default=str)

    def execute(self, prompt, node_id):
        signature = self._signature(node_id, prompt)
        cached = self.outputs.get(node_id)
        if cached is not None and cached[0] == signature:
            return cached[1]
        node = prompt[node_id]
        cls = self.mappings[node["class_type"]]
        kwargs = {}
        for k, v in node["inputs"].items():
            kwargs[k] = self.execute(prompt, v[0])[v[1]] if isinstance(v, list) else v
        if any(k == "unique_id" for k in cls.INPUT_TYPES().get("hidden", {})):
            kwargs["unique_id"] = node_id
        out = getattr(cls(), cls.FUNCTION)(**kwargs)
        self.outputs[node_id] = (signature, out)
        self.executed.append(node_id)
        return out
