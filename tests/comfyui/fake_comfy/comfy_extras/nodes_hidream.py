"""QuadrupleCLIPLoader as a V3 node, as in ComfyUI 0.33.0
comfy_extras/nodes_hidream.py (same schema and execute signature; this fake's own code)."""

import comfy.sd
import folder_paths
from comfy_api.latest import ComfyExtension, io


class QuadrupleCLIPLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        names = folder_paths.get_filename_list("text_encoders")
        return io.Schema(
            node_id="QuadrupleCLIPLoader", display_name="Load CLIP (Quadruple)",
            category="model/loaders",
            description="Recipes:\nhidream: long clip-l, long clip-g, t5xxl, llama_8b_3.1_instruct",
            inputs=[io.Combo.Input(f"clip_name{i}", options=names) for i in (1, 2, 3, 4)],
            outputs=[io.Clip.Output()])

    @classmethod
    def execute(cls, clip_name1, clip_name2, clip_name3, clip_name4):
        paths = [folder_paths.get_full_path_or_raise("text_encoders", n)
                 for n in (clip_name1, clip_name2, clip_name3, clip_name4)]
        return io.NodeOutput(comfy.sd.load_clip(
            ckpt_paths=paths, embedding_directory=folder_paths.get_folder_paths("embeddings")))


class HiDreamExtension(ComfyExtension):
    async def get_node_list(self):
        return [QuadrupleCLIPLoader]


async def comfy_entrypoint() -> HiDreamExtension:
    return HiDreamExtension()
