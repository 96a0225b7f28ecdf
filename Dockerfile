# vepo-viz app on a GPU machine.
#
#   docker build -t vepo-viz .
#
# The container serves on 0.0.0.0, so anyone who reaches the port can use the app: give it
# users. Make a file of user:hash lines (the password is read without echo; no secret goes
# into the image or the command line), readable by the container's uid 1000:
#
#   read -rs -p "password: " PW && printf '%s\n' "$PW" | docker run --rm -i --entrypoint \
#       python vepo-viz -m vepo_viz.ui.auth hash --user alice --password-stdin >> users.txt
#   chmod 644 users.txt
#   docker run --gpus all -p 7860:7860 \
#       -v "$PWD/users.txt:/run/secrets/vepo-viz-users:ro" \
#       -e VEPO_VIZ_AUTH_FILE=/run/secrets/vepo-viz-users \
#       -v ~/.cache/huggingface:/home/app/.cache/huggingface \
#       vepo-viz --model Qwen/Qwen2.5-VL-3B-Instruct
#
# (or `--env-file vepo-viz.env` holding VEPO_VIZ_AUTH=alice:pbkdf2_sha256$...). Remote users
# may choose only the embedded model and --model (add others with --models or
# VEPO_VIZ_MODELS) and cannot start training unless --allow-train; without users the app
# warns at start and shows a banner. The policy in force is shown in the About tab.
#
# torch from PyPI bundles the CUDA 12 runtime and cuDNN (the nvidia-* wheels), so a slim
# Python base is enough: the host needs an NVIDIA driver and the NVIDIA Container Toolkit
# (`--gpus all`). Without a GPU the same image runs on CPU.
FROM python:3.11.7-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GRADIO_ANALYTICS_ENABLED=False \
    MPLCONFIGDIR=/tmp/matplotlib \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

# An unprivileged user; the Hugging Face cache lives in its home (mount your cache there).
RUN useradd --create-home --uid 1000 --shell /usr/sbin/nologin app
WORKDIR /app

# Dependencies first (a code change does not reinstall torch).
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

COPY pyproject.toml README.md app.py ./
COPY vepo_viz ./vepo_viz
COPY assets ./assets
COPY sample_data ./sample_data
RUN pip install --no-cache-dir --no-deps . && chown -R app:app /app

USER 1000:1000
ENV HF_HOME=/home/app/.cache/huggingface
EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7860/', timeout=4)"]

# Inside the container the app must listen on all interfaces to be reachable through -p.
ENTRYPOINT ["python", "app.py", "--host", "0.0.0.0", "--port", "7860"]
CMD ["--model", "embedded"]
