"""A PromptExecutor with ComfyUI's output cache semantics: a node runs again
only when its inputs or its IS_CHANGED / fingerprint_inputs value change;
reset() drops the cache. V1 nodes get hidden inputs (unique_id) as keyword
arguments; V3 nodes (comfy_api io.ComfyNode) run as ComfyUI 0.33.0's
execution.py runs them: only schema inputs are passed, execute() is called on a
locked per-run class clone whose `hidden` holds the hidden values, and the
NodeOutput is unpacked. validate_inputs() is 0.33.0's check of a prompt's inputs."""
import json

import nodes
from comfy_api.internal import _ComfyNodeInternal, first_real_override, make_locked_method_func
from comfy_api.latest import io
from comfy_api.latest import _io


def _is_v3(cls) -> bool:
    return issubclass(cls, _ComfyNodeInternal)


def _v3_call(cls, func: str, node_id, kwargs):
    """0.33.0 _async_map_node_over_list for a V3 class: hidden values from the
    schema's hidden list go to the clone, never into kwargs."""
    _, hidden, _ = _io.get_finalized_class_inputs(cls.INPUT_TYPES(), kwargs)
    v3_data = {"hidden_inputs": {io.Hidden.unique_id: node_id}
               if hidden and io.Hidden.unique_id.name in hidden else {}}
    cls.VALIDATE_CLASS()
    return make_locked_method_func(cls, func, cls.PREPARE_CLASS_CLONE(v3_data))(**kwargs)


def _schema_inputs(cls, kwargs):
    """0.33.0 get_input_data passes only inputs the class declares."""
    declared, _, _ = _io.get_finalized_class_inputs(cls.INPUT_TYPES(), kwargs)
    return {k: v for k, v in kwargs.items() if k in declared["required"] or k in declared["optional"]}


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
        if _is_v3(cls):
            if first_real_override(cls, "fingerprint_inputs") is not None:
                parts.append(_v3_call(cls, "fingerprint_inputs", node_id, _schema_inputs(cls, inputs)))
        elif hasattr(cls, "IS_CHANGED"):
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
        if _is_v3(cls):
            result = _v3_call(cls, cls.FUNCTION, node_id, _schema_inputs(cls, kwargs))
            out = tuple(result.result or ())
        else:
            if any(k == "unique_id" for k in cls.INPUT_TYPES().get("hidden", {})):
                kwargs["unique_id"] = node_id
            out = getattr(cls(), cls.FUNCTION)(**kwargs)
        self.outputs[node_id] = (signature, out)
        self.executed.append(node_id)
        return out


def _types_match(received, wanted) -> bool:
    """0.33.0 comfy_execution/validation.validate_node_input, non-strict."""
    if received == wanted or "*" in (received, wanted):
        return True
    if isinstance(received, list) and wanted == io.Combo.io_type:
        return True
    if not isinstance(received, str) or not isinstance(wanted, str):
        return False
    return bool({t.strip() for t in received.split(",")} & {t.strip() for t in wanted.split(",")})


def validate_inputs(prompt, node_id, mappings=None):
    """(ok, errors) for one node of a prompt and the nodes it links to: the
    checks of 0.33.0 execution.validate_inputs (unknown class, missing required
    input, link type, value conversion, min/max, combo choices; V1 and V3
    classes alike, V3 ones through their schema's INPUT_TYPES). A failed check
    is what makes ComfyUI answer POST /prompt with HTTP 400. Custom
    VALIDATE_INPUTS / validate_inputs functions are not modelled."""
    mappings = mappings if mappings is not None else nodes.NODE_CLASS_MAPPINGS
    node = prompt[node_id]
    cls = mappings.get(node["class_type"])
    if cls is None:
        return False, [{"type": "missing_node_type", "details": node["class_type"]}]
    class_inputs = cls.INPUT_TYPES()
    if _is_v3(cls):
        class_inputs, _, _ = _io.get_finalized_class_inputs(class_inputs, node["inputs"])
    errors = []
    for category in ("required", "optional"):
        for name, spec in class_inputs.get(category, {}).items():
            input_type, extra = spec[0], (spec[1] if len(spec) > 1 else {})
            if name not in node["inputs"]:
                if category == "required":
                    errors.append({"type": "required_input_missing", "details": name})
                continue
            val = node["inputs"][name]
            if isinstance(val, list):
                source = mappings[prompt[val[0]]["class_type"]]
                received = source.RETURN_TYPES[val[1]]
                if not _types_match(received, input_type):
                    errors.append({"type": "return_type_mismatch",
                                   "details": f"{name}, received_type({received}) mismatch input_type({input_type})"})
                elif not validate_inputs(prompt, val[0], mappings)[0]:
                    errors.append({"type": "linked_node_invalid", "details": f"{name}: node {val[0]}"})
                continue
            if isinstance(val, dict) and "__value__" in val:
                val = val["__value__"]
            try:
                val = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}.get(
                    input_type if isinstance(input_type, str) else "", lambda x: x)(val)
            except (TypeError, ValueError) as e:
                errors.append({"type": "invalid_input_type", "details": f"{name}, {val}, {e}"})
                continue
            node["inputs"][name] = val
            if "min" in extra and val < extra["min"]:
                errors.append({"type": "value_smaller_than_min", "details": name})
            elif "max" in extra and val > extra["max"]:
                errors.append({"type": "value_bigger_than_max", "details": name})
            elif isinstance(input_type, list) or input_type == io.Combo.io_type:
                options = extra.get("options", []) if input_type == io.Combo.io_type else input_type
                if val not in options:
                    errors.append({"type": "value_not_in_list", "details": f"{name}: {val!r} not in {options}"})
    return not errors, errors
