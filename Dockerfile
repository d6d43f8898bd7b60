FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PAPERBOY_VAR_DIR=/app/var
WORKDIR /app
# The locked versions, each checked against its hash (`make lock` refreshes the file); a layer
# of its own, rebuilt only when the lock changes.
COPY requirements.txt ./
RUN pip install --no-cache-dir --require-hashes --requirement requirements.txt
COPY pyproject.toml README.md ./
COPY config config
COPY papers papers
COPY newsletter newsletter
COPY templates templates
COPY manage.py ./
RUN pip install --no-cache-dir --no-deps . \
    && SECRET_KEY=build-only DEBUG=false python manage.py collectstatic --no-input
RUN useradd --create-home paperboy && mkdir -p var && chown -R paperboy var
USER paperboy
EXPOSE 8000
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000"]
