import os

from django.apps import AppConfig


class AcademyConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "academy"
    verbose_name = "academy-ai"

    def ready(self) -> None:
        opencv_one_thread()


def opencv_one_thread() -> None:
    """Every process of ours runs OpenCV on one thread, unless the operator set it.

    The web tier's quality gate measures each upload, and by default OpenCV splits that
    over every core, beside the gunicorn workers and pool children that want them: the
    gate's measurement took 2.5 ms of CPU on two threads and 1.7 ms on one, for the same
    wall time. cv2 reads the variable when it is first imported, which is later than
    this (the gate and the processors import it lazily). The pool children set it too
    (config.celery), for a parent started without Django's apps.
    """
    os.environ.setdefault("OPENCV_FOR_THREADS_NUM", "1")
