import os

MODELS_DIR = os.environ.get("FAKE_COMFY_MODELS", "/tmp")


def get_full_path_or_raise(folder_name, filename):
    path = os.path.join(MODELS_DIR, filename)
    if not os.path.exists(path):
        raise FileNotFoundError(f"Model in folder '{folder_name}' with filename '{filename}' not found.")
    return path


get_full_path = get_full_path_or_raise


def get_filename_list(folder_name):
    return sorted(os.listdir(MODELS_DIR)) if os.path.isdir(MODELS_DIR) else []


def get_folder_paths(folder_name):
    return [os.path.join(MODELS_DIR, folder_name)]


OUTPUT_DIR = os.environ.get("FAKE_COMFY_OUTPUT", os.path.join(MODELS_DIR, "output"))


def get_output_directory():
    return OUTPUT_DIR


# ComfyUI 0.33.0 folder_paths.get_save_image_path without the %var%
# substitution: (folder, file name, next counter, subfolder, prefix).
def get_save_image_path(filename_prefix, output_dir, image_width=0, image_height=0):
    subfolder = os.path.dirname(os.path.normpath(filename_prefix))
    filename = os.path.basename(os.path.normpath(filename_prefix))
    full_output_folder = os.path.join(output_dir, subfolder)
    os.makedirs(full_output_folder, exist_ok=True)
    counters = [int(f[len(filename) + 1:].split(".")[0].split("_")[0] or 0)
                for f in os.listdir(full_output_folder) if f.startswith(filename + "_")]
    return full_output_folder, filename, max(counters, default=0) + 1, subfolder, filename_prefix
