"""ComfyUI's V3 node definition API (`from comfy_api.latest import io`), the
part distorch's loader twins and the fake stock loaders use.

Every class and function here mirrors the one of the same name in ComfyUI 0.33.0
comfy_api/latest/_io.py: names, constructor arguments, `as_dict` keys and the
behaviour the executor and /object_info rely on. The code is this fake's own and
leaves out what no test needs (dynamic/autogrow inputs, MatchType, price badges,
async execute, UI outputs).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any, Dict, List, Optional, Tuple, final

from comfy_api.internal import (_ComfyNodeInternal, _NodeOutputInternal, classproperty,
                                first_real_override, is_class, prune_dict, shallow_clone_class)


# -- types: 0.33.0 `comfytype` binds io_type and gives each type its own Input/Output
class _ComfyType:
    io_type: Optional[str] = None


def comfytype(io_type: str):
    """0.33.0 `@comfytype(io_type=...)`: sets io_type and points the type's
    Input/Output classes (subclassed per type) at it through `Parent`."""
    def decorate(cls):
        cls.io_type = io_type
        for name in ("Input", "Output"):
            inner = getattr(cls, name, None)
            if inner is not None:
                setattr(cls, name, type(inner.__name__, (inner,), {"Parent": cls}))
        return cls
    return decorate


class _IO_V3:
    Parent: Any = None

    @property
    def io_type(self) -> str:
        return self.Parent.io_type

    def validate(self) -> None:
        pass


class Input(_IO_V3):
    """0.33.0 Input: one schema input; `optional` picks V1's required/optional."""

    def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None,
                 lazy: bool = None, extra_dict=None, raw_link: bool = None, advanced: bool = None):
        self.id = id
        self.display_name = display_name
        self.optional = optional
        self.tooltip = tooltip
        self.lazy = lazy
        self.extra_dict = extra_dict if extra_dict is not None else {}
        self.rawLink = raw_link
        self.advanced = advanced

    def as_dict(self) -> dict:
        return prune_dict({"display_name": self.display_name, "optional": self.optional,
                           "tooltip": self.tooltip, "lazy": self.lazy, "rawLink": self.rawLink,
                           "advanced": self.advanced}) | prune_dict(self.extra_dict)

    def get_io_type(self) -> str:
        return self.io_type

    def get_all(self) -> List["Input"]:
        return [self]


class WidgetInput(Input):
    """0.33.0 WidgetInput: an input with a widget and a default."""

    def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None,
                 lazy: bool = None, default: Any = None, socketless: bool = None,
                 widget_type: str = None, force_input: bool = None, extra_dict=None,
                 raw_link: bool = None, advanced: bool = None):
        super().__init__(id, display_name, optional, tooltip, lazy, extra_dict, raw_link, advanced)
        self.default = default
        self.socketless = socketless
        self.widget_type = widget_type
        self.force_input = force_input

    def as_dict(self) -> dict:
        return super().as_dict() | prune_dict({"default": self.default, "socketless": self.socketless,
                                               "widgetType": self.widget_type,
                                               "forceInput": self.force_input})


class Output(_IO_V3):
    """0.33.0 Output: one schema output; an output without id gets
    `_<index>_<io_type>_` in Schema.finalize."""

    def __init__(self, id: str = None, display_name: str = None, tooltip: str = None,
                 is_output_list=False):
        self.id = id
        self.display_name = display_name if display_name else id
        self.tooltip = tooltip
        self.is_output_list = is_output_list

    def as_dict(self) -> dict:
        return prune_dict({"display_name": self.display_name or self.id, "tooltip": self.tooltip,
                           "is_output_list": self.is_output_list})

    def get_io_type(self) -> str:
        return self.io_type


class ComfyTypeIO(_ComfyType):
    Input = Input
    Output = Output


@comfytype(io_type="BOOLEAN")
class Boolean(ComfyTypeIO):
    class Input(WidgetInput):
        def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None,
                     lazy: bool = None, default: bool = None, label_on: str = None,
                     label_off: str = None, socketless: bool = None, force_input: bool = None,
                     extra_dict=None, raw_link: bool = None, advanced: bool = None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None,
                             force_input, extra_dict, raw_link, advanced)
            self.label_on = label_on
            self.label_off = label_off

        def as_dict(self) -> dict:
            return super().as_dict() | prune_dict({"label_on": self.label_on,
                                                   "label_off": self.label_off})


@comfytype(io_type="FLOAT")
class Float(ComfyTypeIO):
    class Input(WidgetInput):
        def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None,
                     lazy: bool = None, default: float = None, min: float = None, max: float = None,
                     step: float = None, round: float = None, display_mode=None,
                     gradient_stops=None, socketless: bool = None, force_input: bool = None,
                     extra_dict=None, raw_link: bool = None, advanced: bool = None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None,
                             force_input, extra_dict, raw_link, advanced)
            self.min, self.max, self.step, self.round = min, max, step, round
            self.display_mode = display_mode
            self.gradient_stops = gradient_stops

        def as_dict(self) -> dict:
            return super().as_dict() | prune_dict({
                "min": self.min, "max": self.max, "step": self.step, "round": self.round,
                "display": self.display_mode, "gradient_stops": self.gradient_stops})


@comfytype(io_type="STRING")
class String(ComfyTypeIO):
    class Input(WidgetInput):
        def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None,
                     lazy: bool = None, multiline=False, placeholder: str = None,
                     default: str = None, dynamic_prompts: bool = None, socketless: bool = None,
                     force_input: bool = None, extra_dict=None, raw_link: bool = None,
                     advanced: bool = None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None,
                             force_input, extra_dict, raw_link, advanced)
            self.multiline = multiline
            self.placeholder = placeholder
            self.dynamic_prompts = dynamic_prompts

        def as_dict(self) -> dict:
            return super().as_dict() | prune_dict({"multiline": self.multiline,
                                                   "placeholder": self.placeholder,
                                                   "dynamicPrompts": self.dynamic_prompts})


@comfytype(io_type="COMBO")
class Combo(ComfyTypeIO):
    """0.33.0 Combo: V1 type "COMBO" with the choices in `options` (not a list
    as the V1 type, which is what V1 nodes write)."""

    class Input(WidgetInput):
        def __init__(self, id: str, options=None, display_name: str = None, optional=False,
                     tooltip: str = None, lazy: bool = None, default=None,
                     control_after_generate=None, upload=None, image_folder=None, remote=None,
                     socketless: bool = None, extra_dict=None, raw_link: bool = None,
                     advanced: bool = None):
            if isinstance(options, type) and issubclass(options, Enum):
                options = [v.value for v in options]
            if isinstance(default, Enum):
                default = default.value
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None,
                             None, extra_dict, raw_link, advanced)
            self.multiselect = False
            self.options = options
            self.control_after_generate = control_after_generate

        def as_dict(self) -> dict:
            return super().as_dict() | prune_dict({
                "multiselect": self.multiselect, "options": self.options,
                "control_after_generate": self.control_after_generate})


@comfytype(io_type="CLIP")
class Clip(ComfyTypeIO):
    pass


@comfytype(io_type="MODEL")
class Model(ComfyTypeIO):
    pass


# -- hidden inputs ------------------------------------------------------------
class Hidden(str, Enum):
    """0.33.0 Hidden: what a schema's `hidden` list may ask the executor for."""
    unique_id = "UNIQUE_ID"
    prompt = "PROMPT"
    extra_pnginfo = "EXTRA_PNGINFO"
    dynprompt = "DYNPROMPT"
    auth_token_comfy_org = "AUTH_TOKEN_COMFY_ORG"
    api_key_comfy_org = "API_KEY_COMFY_ORG"
    comfy_usage_source = "COMFY_USAGE_SOURCE"


class HiddenHolder:
    """0.33.0 HiddenHolder: `cls.hidden` inside execute/fingerprint_inputs;
    a hidden value the schema did not ask for reads as None."""

    def __init__(self, unique_id=None, prompt=None, extra_pnginfo=None, dynprompt=None,
                 auth_token_comfy_org=None, api_key_comfy_org=None, comfy_usage_source=None,
                 **kwargs):
        self.unique_id = unique_id
        self.prompt = prompt
        self.extra_pnginfo = extra_pnginfo
        self.dynprompt = dynprompt
        self.auth_token_comfy_org = auth_token_comfy_org
        self.api_key_comfy_org = api_key_comfy_org
        self.comfy_usage_source = comfy_usage_source

    def __getattr__(self, key: str):
        return None

    @classmethod
    def from_dict(cls, d: Optional[dict]) -> "HiddenHolder":
        d = d or {}
        return cls(**{h.name: d.get(h) for h in Hidden})

    @classmethod
    def from_v3_data(cls, v3_data: Optional[dict]) -> "HiddenHolder":
        return cls.from_dict(v3_data["hidden_inputs"] if v3_data else None)


# -- schema -------------------------------------------------------------------
@dataclass
class NodeInfoV1:
    """0.33.0 NodeInfoV1: one node's /object_info entry (asdict of it)."""
    input: dict = None
    input_order: dict = None
    is_input_list: bool = None
    output: list = None
    output_is_list: list = None
    output_name: list = None
    output_tooltips: list = None
    output_matchtypes: list = None
    name: str = None
    display_name: str = None
    description: str = None
    python_module: Any = None
    category: str = None
    output_node: bool = None
    deprecated: bool = None
    experimental: bool = None
    dev_only: bool = None
    api_node: bool = None
    price_badge: dict = None
    search_aliases: list = None
    essentials_category: str = None
    has_intermediate_output: bool = None


@dataclass
class Schema:
    """0.33.0 Schema: what define_schema returns (fields the loaders use, and
    the flags /object_info reports)."""
    node_id: str
    display_name: str = None
    category: str = "sd"
    inputs: List[Input] = field(default_factory=list)
    outputs: List[Output] = field(default_factory=list)
    hidden: List[Hidden] = field(default_factory=list)
    description: str = ""
    search_aliases: List[str] = field(default_factory=list)
    is_input_list: bool = False
    is_output_node: bool = False
    is_deprecated: bool = False
    is_experimental: bool = False
    is_dev_only: bool = False
    is_api_node: bool = False
    not_idempotent: bool = False
    enable_expand: bool = False
    accept_all_inputs: bool = False
    essentials_category: Optional[str] = None
    has_intermediate_output: bool = False

    def validate(self) -> None:
        """Input ids and output ids must each be unique (0.33.0)."""
        issues = []
        for kind, ids in (("Input", [i.id for i in self.inputs]), ("Output", [o.id for o in self.outputs])):
            doubles = sorted({x for x in ids if ids.count(x) > 1})
            if doubles:
                issues.append(f"{kind} ids must be unique, but {doubles} are not.")
        if issues:
            raise ValueError("\n".join(issues))

    def finalize(self) -> None:
        """Output nodes get prompt/extra_pnginfo; outputs get default ids (0.33.0)."""
        self.inputs, self.outputs, self.hidden = self.inputs or [], self.outputs or [], self.hidden or []
        if self.is_output_node:
            for h in (Hidden.prompt, Hidden.extra_pnginfo):
                if h not in self.hidden:
                    self.hidden.append(h)
        for i, output in enumerate(self.outputs):
            if output.id is None:
                output.id = f"_{i}_{output.io_type}_"

    def get_v1_info(self, cls) -> NodeInfoV1:
        inputs = create_input_dict_v1(self.inputs)
        for h in self.hidden:
            inputs.setdefault("hidden", {})[h.name] = (h.value,)
        return NodeInfoV1(
            input=inputs, input_order={k: list(v) for k, v in inputs.items()},
            is_input_list=self.is_input_list,
            output=[o.io_type for o in self.outputs],
            output_is_list=[o.is_output_list for o in self.outputs],
            output_name=[o.display_name or o.io_type for o in self.outputs],
            output_tooltips=[o.tooltip or None for o in self.outputs],
            name=self.node_id, display_name=self.display_name, category=self.category,
            description=self.description, output_node=self.is_output_node,
            has_intermediate_output=self.has_intermediate_output, deprecated=self.is_deprecated,
            experimental=self.is_experimental, dev_only=self.is_dev_only,
            api_node=self.is_api_node,
            python_module=getattr(cls, "RELATIVE_PYTHON_MODULE", "nodes"),
            search_aliases=self.search_aliases or None,
            essentials_category=self.essentials_category)


def add_to_dict_v1(i: Input, d: dict) -> None:
    """0.33.0: a V3 input as V1's `name: (type, options)`, under required or optional."""
    options = i.as_dict()
    options.pop("optional", None)
    d.setdefault("optional" if i.optional else "required", {})[i.id] = (i.get_io_type(), options)


def create_input_dict_v1(inputs: List[Input]) -> dict:
    d = {"required": {}}
    for i in inputs:
        add_to_dict_v1(i, d)
    return d


# 0.33.0: io_type -> expander for dynamic inputs (Autogrow, DynamicCombo, ...); none here
DYNAMIC_INPUT_LOOKUP: Dict[str, Any] = {}


def get_finalized_class_inputs(d: dict, live_inputs: dict, include_hidden=False
                               ) -> Tuple[dict, Optional[dict], dict]:
    """0.33.0: (required/optional inputs, hidden inputs, V3 data) from a V3
    node's INPUT_TYPES(); hidden is split off, so the executor and the
    validator never see it among the inputs. Each input's type is looked up
    among the dynamic input types, so a V1-style combo (a list as the type)
    raises TypeError here, as in 0.33.0. (No dynamic inputs here.)"""
    d = dict(d)
    hidden = d.pop("hidden", None)
    out = {"required": {}, "optional": {}}
    for category in ("required", "optional"):
        for name, spec in d.get(category, {}).items():
            if spec[0] in DYNAMIC_INPUT_LOOKUP:
                raise NotImplementedError(f"{name}: dynamic inputs are not in this fake")
            out[category][name] = spec
    if hidden is not None and include_hidden:
        out["hidden"] = hidden
    return out, hidden, {}


def build_nested_inputs(values: dict, v3_data: dict) -> dict:
    """0.33.0 nests dynamic-input values; without dynamic inputs it is the identity."""
    return values


# -- the node base ------------------------------------------------------------
# 0.33.0 GET_SCHEMA copies these schema fields into `_<NAME>` class attributes,
# but only where the attribute is still None; `<NAME>` reads them back.
_SCHEMA_CACHES = {"DESCRIPTION": "description", "CATEGORY": "category",
                  "EXPERIMENTAL": "is_experimental", "DEPRECATED": "is_deprecated",
                  "DEV_ONLY": "is_dev_only", "API_NODE": "is_api_node",
                  "OUTPUT_NODE": "is_output_node", "HAS_INTERMEDIATE_OUTPUT": "has_intermediate_output",
                  "INPUT_IS_LIST": "is_input_list", "NOT_IDEMPOTENT": "not_idempotent",
                  "ACCEPT_ALL_INPUTS": "accept_all_inputs"}
_OUTPUT_CACHES = ("RETURN_TYPES", "RETURN_NAMES", "OUTPUT_IS_LIST", "OUTPUT_TOOLTIPS")


def _cached(name: str) -> classproperty:
    def read(cls):
        if getattr(cls, "_" + name) is None:
            cls.GET_SCHEMA()
        return getattr(cls, "_" + name)
    return classproperty(read)


class _ComfyNodeBaseInternal(_ComfyNodeInternal):
    RELATIVE_PYTHON_MODULE = None
    SCHEMA = None
    hidden: HiddenHolder = None  # set on the per-run class clone

    @classmethod
    def define_schema(cls) -> Schema:
        raise NotImplementedError

    @classmethod
    def execute(cls, **kwargs) -> "NodeOutput":
        raise NotImplementedError

    @classmethod
    def validate_inputs(cls, **kwargs):
        raise NotImplementedError

    @classmethod
    def fingerprint_inputs(cls, **kwargs) -> Any:
        """V3's IS_CHANGED; used only when a subclass overrides it."""
        raise NotImplementedError

    @classmethod
    def check_lazy_status(cls, **kwargs) -> List[str]:
        return [name for name in kwargs if kwargs[name] is None]

    def __init__(self):
        self.__class__.VALIDATE_CLASS()

    @classmethod
    def GET_BASE_CLASS(cls):
        return _ComfyNodeBaseInternal

    @final
    @classmethod
    def VALIDATE_CLASS(cls) -> None:
        for name in ("define_schema", "execute"):
            if first_real_override(cls, name) is None:
                raise Exception(f"No {name} function was defined for node class {cls.__name__}.")

    @classproperty
    def FUNCTION(cls):  # noqa: N802
        return "EXECUTE_NORMALIZED"

    @final
    @classmethod
    def EXECUTE_NORMALIZED(cls, *args, **kwargs) -> "NodeOutput":
        out = cls.execute(*args, **kwargs)
        if out is None:
            out = NodeOutput()
        elif isinstance(out, tuple):
            out = NodeOutput(*out)
        elif isinstance(out, dict):
            out = NodeOutput.from_dict(out)
        elif not isinstance(out, NodeOutput):
            raise Exception(f"Invalid return type from node: {type(out)}")
        if out.expand is not None and not cls.SCHEMA.enable_expand:
            raise Exception(f"Node {cls.__name__} is not expandable, but expand included in NodeOutput")
        return out

    @final
    @classmethod
    def PREPARE_CLASS_CLONE(cls, v3_data: Optional[dict]) -> type:
        """The class execute runs on: a clone carrying this run's hidden values."""
        clone = shallow_clone_class(cls if is_class(cls) else type(cls))
        clone.hidden = HiddenHolder.from_v3_data(v3_data)
        return clone

    @final
    @classmethod
    def GET_NODE_INFO_V1(cls) -> Dict[str, Any]:
        return asdict(cls.GET_SCHEMA().get_v1_info(cls))

    @final
    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return cls.FINALIZE_SCHEMA().get_v1_info(cls).input

    @final
    @classmethod
    def FINALIZE_SCHEMA(cls) -> Schema:
        schema = cls.define_schema()
        schema.finalize()
        return schema

    @final
    @classmethod
    def GET_SCHEMA(cls) -> Schema:
        cls.VALIDATE_CLASS()
        schema = cls.FINALIZE_SCHEMA()
        schema.validate()
        for name, attr in _SCHEMA_CACHES.items():
            if getattr(cls, "_" + name) is None:
                setattr(cls, "_" + name, getattr(schema, attr))
        if cls._RETURN_TYPES is None:
            cls._RETURN_TYPES = [o.io_type for o in schema.outputs]
            cls._RETURN_NAMES = [o.display_name or o.io_type for o in schema.outputs]
            cls._OUTPUT_IS_LIST = [o.is_output_list for o in schema.outputs]
            cls._OUTPUT_TOOLTIPS = [o.tooltip or None for o in schema.outputs]
        cls.SCHEMA = schema
        return schema


for _name in list(_SCHEMA_CACHES) + list(_OUTPUT_CACHES):
    setattr(_ComfyNodeBaseInternal, "_" + _name, None)
    setattr(_ComfyNodeBaseInternal, _name, _cached(_name))


class ComfyNode(_ComfyNodeBaseInternal):
    """0.33.0 ComfyNode: the base of every V3 node."""

    @final
    @classmethod
    def GET_BASE_CLASS(cls):
        return ComfyNode


class NodeOutput(_NodeOutputInternal):
    """0.33.0 NodeOutput: a V3 node's outputs (`args`, `result`) plus ui/expand."""

    def __init__(self, *args: Any, ui=None, expand: dict = None, block_execution: str = None):
        self.args = args
        self.ui = ui
        self.expand = expand
        self.block_execution = block_execution

    @property
    def result(self) -> Optional[tuple]:
        return self.args if len(self.args) > 0 else None

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "NodeOutput":
        return cls(*data.get("result", ()), ui=data.get("ui"), expand=data.get("expand"))

    def __getitem__(self, index) -> Any:
        return self.args[index]
