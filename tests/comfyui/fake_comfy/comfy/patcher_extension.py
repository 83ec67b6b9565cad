class CallbacksMP:
    ON_LOAD = "on_load_after"
    ON_DETACH = "on_detach_after"
