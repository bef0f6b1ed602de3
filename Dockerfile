# syntax=docker/dockerfile:1
# The enterprise API. Used by docker-compose.yml; see there for the servers it needs.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app

WORKDIR /app

# Dependencies first (read from pyproject.toml), so a code change does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
      > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

COPY README.md ./
COPY enterprise ./enterprise
COPY middleware ./middleware
COPY indexes ./indexes
RUN pip install --no-deps . && rm -rf build ./*.egg-info

USER app
EXPOSE 8000

# Inside the container the API must listen on all interfaces; compose publishes it on
# 127.0.0.1 only.
CMD ["python", "-m", "enterprise", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
