# The web worker image: daphne (on uvloop: chatproject/serve.py) serving chatproject.asgi:application
# (docs/deploy.md).

# Front-end libraries from npm, exactly as pinned in package-lock.json.
FROM node:20-slim AS assets
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

# A slim Python runtime.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

# Dependencies first, so that a change to the code alone reuses this layer.
COPY pyproject.toml README.md ./
RUN pip install .

COPY . .
COPY --from=assets /app/node_modules ./node_modules
# Static files collected at build time (hashed names, compressed copies for ServeStatic).
RUN DJANGO_SECRET_KEY=collectstatic-only DJANGO_DEBUG=false \
    python manage.py collectstatic --noinput --verbosity 0

RUN useradd --system --create-home --uid 10001 chat
USER chat

EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
# daphne stops on SIGTERM after draining (STREAM_DRAIN_SECONDS): give it longer than that
# (docker-compose.yml's stop_grace_period).
STOPSIGNAL SIGTERM
CMD ["python", "-m", "chatproject.serve", "-b", "0.0.0.0", "-p", "8000", "--proxy-headers", "chatproject.asgi:application"]
