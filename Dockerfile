# GPU image for the vepo-viz app (filled in by the app issue).
FROM python:3.11-slim
WORKDIR /app
COPY . /app
RUN pip install --no-cache-dir -r requirements.txt && pip install --no-cache-dir --no-deps .
CMD ["python", "app.py", "--host", "0.0.0.0"]
