"""ComfyUI-shaped weight hooks (comfy/hooks.py of ComfyUI 0.33.0): the parts a
hook LoRA (CreateHookLora -> SetClipHooks -> CLIPTextEncode) and a sampler's
model hooks go through. Keyframes are reduced to a constant strength; the
ObjectPatch/AdditionalModels/TransformerOptions/Injections hook types are
names only."""
import enum

import comfy.lora


# 0.33.0 comfy/hooks.py EnumHookMode: MinVram does not cache hooked weights,
# MaxSpeed caches them per HookGroup (patch_cached_hook_weights).
class EnumHookMode(enum.Enum):
    MinVram = "minvram"
    MaxSpeed = "maxspeed"


class EnumHookType(enum.Enum):
    Weight = "weight"
    ObjectPatch = "object_patch"
    AdditionalModels = "add_models"
    TransformerOptions = "transformer_options"
    Injections = "add_injections"


class EnumWeightTarget(enum.Enum):
    Model = "model"
    Clip = "clip"


class EnumHookScope(enum.Enum):
    AllConditioning = "all_conditioning"
    HookedOnly = "hooked_only"


class _HookRef:
    pass


def default_should_register(hook, model, model_options, target_dict, registered):
    return True


# 0.33.0 comfy/hooks.py create_target_dict.
def create_target_dict(target=None, **kwargs):
    d = {}
    if target is not None:
        d["target"] = target
    d.update(kwargs)
    return d


class HookKeyframeGroup:
    """0.33.0's keyframe group without keyframes: strength 1.0 throughout."""

    def __init__(self):
        self.keyframes = []
        self._current_strength = None

    @property
    def strength(self):
        return self._current_strength if self._current_strength is not None else 1.0

    def reset(self):
        self._current_strength = None

    def clone(self):
        c = HookKeyframeGroup()
        c.keyframes = list(self.keyframes)
        return c


# 0.33.0 comfy/hooks.py Hook: equality and hash by hook_ref, shared by clones.
class Hook:
    def __init__(self, hook_type=None, hook_ref=None, hook_id=None, hook_keyframe=None,
                 hook_scope=EnumHookScope.AllConditioning):
        self.hook_type = hook_type
        self.hook_ref = hook_ref if hook_ref else _HookRef()
        self.hook_id = hook_id
        self.hook_keyframe = hook_keyframe if hook_keyframe else HookKeyframeGroup()
        self.hook_scope = hook_scope
        self.custom_should_register = default_should_register

    @property
    def strength(self):
        return self.hook_keyframe.strength

    def reset(self):
        self.hook_keyframe.reset()

    def clone(self):
        c = self.__class__()
        c.hook_type = self.hook_type
        c.hook_ref = self.hook_ref
        c.hook_id = self.hook_id
        c.hook_keyframe = self.hook_keyframe
        c.hook_scope = self.hook_scope
        c.custom_should_register = self.custom_should_register
        return c

    def should_register(self, model, model_options, target_dict, registered):
        return self.custom_should_register(self, model, model_options, target_dict, registered)

    def __eq__(self, other):
        return self.__class__ == other.__class__ and self.hook_ref == other.hook_ref

    def __hash__(self):
        return hash(self.hook_ref)


# 0.33.0 comfy/hooks.py WeightHook.add_hook_patches: the LoRA file goes
# through comfy.lora.load_lora with the model's (or the text encoder's) key map
# and lands in ModelPatcher.add_hook_patches.
class WeightHook(Hook):
    def __init__(self, strength_model=1.0, strength_clip=1.0):
        super().__init__(hook_type=EnumHookType.Weight, hook_scope=EnumHookScope.HookedOnly)
        self.weights = None
        self.weights_clip = None
        self.need_weight_init = True
        self._strength_model = strength_model
        self._strength_clip = strength_clip
        self.hook_scope = EnumHookScope.HookedOnly

    @property
    def strength_model(self):
        return self._strength_model * self.strength

    @property
    def strength_clip(self):
        return self._strength_clip * self.strength

    def add_hook_patches(self, model, model_options, target_dict, registered):
        if not self.should_register(model, model_options, target_dict, registered):
            return False
        target = target_dict.get("target", None)
        strength = self._strength_clip if target == EnumWeightTarget.Clip else self._strength_model
        if self.need_weight_init:
            if target == EnumWeightTarget.Clip:
                key_map = comfy.lora.model_lora_keys_clip(model.model, {})
            else:
                key_map = comfy.lora.model_lora_keys_unet(model.model, {})
            weights = comfy.lora.load_lora(self.weights, key_map, log_missing=False)
        else:
            weights = self.weights_clip if target == EnumWeightTarget.Clip else self.weights
        model.add_hook_patches(hook=self, patches=weights, strength_patch=strength)
        registered.add(self)
        return True

    def clone(self):
        c = super().clone()
        c.weights = self.weights
        c.weights_clip = self.weights_clip
        c.need_weight_init = self.need_weight_init
        c._strength_model = self._strength_model
        c._strength_clip = self._strength_clip
        return c


# 0.33.0 comfy/hooks.py HookGroup: no __eq__, so ModelPatcher.apply_hooks'
# `current_hooks == hooks` and the cached_hook_patches keys are by identity.
class HookGroup:
    def __init__(self):
        self.hooks = []
        self._hook_dict = {}

    def __len__(self):
        return len(self.hooks)

    def add(self, hook):
        if hook not in self.hooks:
            self.hooks.append(hook)
            self._hook_dict.setdefault(hook.hook_type, []).append(hook)

    def get_type(self, hook_type):
        return self._hook_dict.get(hook_type, [])

    def contains(self, hook):
        return hook in self.hooks

    def clone(self):
        c = HookGroup()
        for hook in self.hooks:
            c.add(hook.clone())
        return c

    def clone_and_combine(self, other):
        c = self.clone()
        if other is not None:
            for hook in other.hooks:
                c.add(hook.clone())
        return c

    def set_keyframes_on_hooks(self, hook_kf):
        hook_kf = HookKeyframeGroup() if hook_kf is None else hook_kf.clone()
        for hook in self.hooks:
            hook.hook_keyframe = hook_kf

    def reset(self):
        for hook in self.hooks:
            hook.reset()


def create_transformer_options_from_hooks(model, hooks, transformer_options=None):
    if hooks is None or model.is_clip:
        return {}
    return {} if transformer_options is None else transformer_options


# 0.33.0 comfy/hooks.py create_hook_lora.
def create_hook_lora(lora, strength_model, strength_clip):
    hook_group = HookGroup()
    hook = WeightHook(strength_model=strength_model, strength_clip=strength_clip)
    hook_group.add(hook)
    hook.weights = lora
    return hook_group
