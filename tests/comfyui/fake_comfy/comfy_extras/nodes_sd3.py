"""TripleCLIPLoader as a V3 node, as in ComfyUI 0.33.0 comfy_extras/nodes_sd3.py
(same schema and execute signature; this fake's own code)."""

import comfy.sd
import folder_paths
from comfy_api.latest import ComfyExtension, io


class TripleCLIPLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        names = folder_paths.get_filename_list("text_encoders")
        return io.Schema(
            node_id="TripleCLIPLoader", display_name="Load CLIP (Triple)",
            category="model/loaders", description="Recipes:\nsd3: clip-l, clip-g, t5",
            inputs=[io.Combo.Input(f"clip_name{i}", options=names) for i in (1, 2, 3)],
            outputs=[io.Clip.Output()])

    @classmethod
    def execute(cls, clip_name1, clip_name2, clip_name3) -> io.NodeOutput:
        paths = [folder_paths.get_full_path_or_raise("text_encoders", n)
                 for n in (clip_name1, clip_name2, clip_name3)]
        return io.NodeOutput(comfy.sd.load_clip(
            ckpt_paths=paths, embedding_directory=folder_paths.get_folder_paths("embeddings")))

    load_clip = execute  # 0.33.0 keeps the V1 method name as an alias


class SD3Extension(ComfyExtension):
    async def get_node_list(self):
        return [TripleCLIPLoader]


async def comfy_entrypoint() -> SD3Extension:
    return SD3Extension()
