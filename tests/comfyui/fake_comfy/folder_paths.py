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
