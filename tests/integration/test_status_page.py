"""The status page, `mongo2mysql status --serve` (docs/status.md), loaded in headless Chromium against
a real capture and apply: it shows the collection with the counts MySQL and Kafka have, the
snapshot's progress, charts that fill with samples, the quarantined events with their reason and
document, and a retry from the page lands the document's row in MySQL; a retry that is not safe is
refused, saying why.

The screenshot in docs/status-page.png comes from this test: M2M_UPDATE_SCREENSHOT=1 writes it there
(otherwise it goes to the test's temporary directory)."""
import json
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.request

from confluent_kafka import Producer
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By

import pipeline
import stack


def start_page(tmp_path, database, group, prefix, *extra):
    process = pipeline.Process(
        ["status", "--serve", "--serve-port", "0", "--interval", "1", "--kafka-bootstrap", stack.KAFKA_BOOTSTRAP,
         "--topic-prefix", prefix, "--group", group, "--mysql-host", stack.MYSQL["host"],
         "--mysql-port", stack.MYSQL["port"], "--mysql-user", stack.MYSQL["user"], "--mysql-database", database,
         *extra], tmp_path / "status-page.log")

    def logged():
        process.assert_running()
        return re.search(r"status page at http://127\.0\.0\.1:(\d+)/", process.log())
    port = stack.wait_for(logged, timeout=120, what="the page's address in the log").group(1)
    return process, f"http://127.0.0.1:{port}"


def chromium():
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1500,1420", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    return webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"))


def post(url, headers=None):
    """POSTs with urllib (no browser): (HTTP status, body)."""
    request = urllib.request.Request(url, data=b"", method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_status_page_in_chromium(mongo_db, mysql_db, tmp_path):
    database, conn = mysql_db
    prefix = stack.unique("sp")
    group = stack.unique("g")
    ns = f"{mongo_db.name}.orders"
    topic = f"{prefix}.{ns}"
    orders = mongo_db["orders"]
    orders.insert_many([{"_id": i, "n": i, "name": f"o{i}"} for i in range(40)])  # copied by the snapshot

    capture = pipeline.start_capture(tmp_path, mongo_db.name, "orders", prefix=prefix, name="sp",
                                     extra=["--snapshot-chunk-size", "10"])
    apply = page = browser = None
    try:
        pipeline.wait_for_checkpoint(prefix, capture)

        def count(sql, *args):
            with conn.cursor() as cur:
                cur.execute(sql, args)
                return cur.fetchone()[0]

        # The page from before apply starts: the snapshot waits in Kafka.
        page, url = start_page(tmp_path, database, group, prefix, "--mongo-uri", stack.MONGO_URI)
        browser = chromium()
        browser.get(url + "/")

        # The page redraws its tables and charts at each sample, so it is read with one script call
        # at a time (an element found first may be gone by the time it is read).
        def text(css):
            return browser.execute_script("const e = document.querySelector(arguments[0]); "
                                          "return e ? e.innerText.trim() : null;", css)

        def attr(css, name):
            return browser.execute_script("const e = document.querySelector(arguments[0]); "
                                          "return e ? e.getAttribute(arguments[1]) : null;", css, name)

        def cell(field):
            return text(f'#collections tr[data-topic="{topic}"] td[data-field="{field}"]')

        def line(chart, name):
            return attr(f'#chart-{chart} path[data-topic="{topic}"]', name)

        stack.wait_for(lambda: int(line("lag_events", "data-points") or 0) >= 2 and cell("applied_events") == "0",
                       timeout=60, what="two samples of the lag before apply starts")
        assert int(cell("lag_events").replace(",", "")) >= 40
        assert float(line("lag_events", "data-max")) >= 40

        apply = pipeline.start_apply(tmp_path, database, group, topics=[topic], extra=["--max-batch-ms", "100"])
        stack.wait_for(lambda: apply.assert_running() or count("SELECT COUNT(*) FROM information_schema.TABLES "
                                                                "WHERE TABLE_SCHEMA=%s AND TABLE_NAME='orders'",
                                                                database) == 1
                       and count("SELECT COUNT(*) FROM orders") == 40, timeout=180, what="the snapshot in MySQL")
        for first in (40, 50, 60):  # a stream of changes, for the throughput chart
            orders.insert_many([{"_id": i, "n": i, "name": f"o{i}"} for i in range(first, first + 10)])
            stack.wait_for(lambda: count("SELECT COUNT(*) FROM orders") == first + 10, timeout=120,
                           what=f"documents up to {first + 10} in MySQL")

        # MySQL refuses the next document: quarantined. And a record nobody can decode.
        with conn.cursor() as cur:
            cur.execute("ALTER TABLE orders ADD CONSTRAINT small_n CHECK (n < 1000)")
        orders.insert_one({"_id": 100, "n": 5000, "name": "too big"})
        producer = Producer({"bootstrap.servers": stack.KAFKA_BOOTSTRAP})
        producer.produce(topic, key=b'{"id": 7}', value=b"not json{")
        assert producer.flush(60) == 0
        pending = "SELECT COUNT(*) FROM _m2m_quarantine WHERE group_id=%s AND replayed_at IS NULL"
        stack.wait_for(lambda: apply.assert_running() or count(pending, group) == 2, timeout=180,
                       what="apply to quarantine 2 events")
        with conn.cursor() as cur:  # the cause fixed: a retry can write the document now
            cur.execute("ALTER TABLE orders DROP CONSTRAINT small_n")

        # The numbers MySQL and Kafka have: every record applied, nothing waiting.
        stored = "SELECT SUM(applied_events) FROM _m2m_offsets WHERE group_id=%s AND topic=%s"
        applied = count(stored, group, topic)
        kafka_end = pipeline.topic_end_offsets(topic)
        assert applied >= 40 + 31 + 1  # snapshot, the stream's changes, the undecodable record
        stack.wait_for(lambda: cell("applied_events") == f"{applied:,}" and cell("lag_events") == "0",
                       timeout=60, what=f"the page to show {applied} applied and no lag")
        assert cell("collection") == ns
        assert cell("tables") == "orders"
        assert cell("end_offset") == f"{kafka_end:,}"
        assert cell("quarantined") == "2"
        assert cell("snapshot") == "done: 40 of 40 documents, 4/4 chunks"
        capture_row = text('#captures tr[data-capture="sp"]')
        assert f"collection:{ns}" in capture_row and "done" in capture_row
        assert "apply group " + group in text("#summary")

        # The charts: the lag that waited for apply is gone, the throughput while it applied shows.
        assert int(line("applied_per_s", "data-points")) >= 3
        assert float(line("applied_per_s", "data-max")) > 0
        assert float(line("lag_events", "data-max")) >= 40
        assert float(line("lag_events", "data-last")) == 0
        assert float(line("lag_seconds", "data-last")) == 0
        assert ns in text("#legend")

        # The quarantine: both events, each with its reason; the refused one with its document.
        def rows():
            return {r["event"]: r for r in browser.execute_script(
                "return [...document.querySelectorAll('#quarantine tbody tr')].map(r => ({id: Number(r.dataset.id), "
                "event: r.querySelector('[data-field=event]').innerText, "
                "namespace: r.querySelector('[data-field=namespace]').innerText, "
                "key: r.querySelector('[data-field=document_key]').innerText, "
                "state: r.querySelector('[data-field=state]').innerText}));")}
        stack.wait_for(lambda: len(rows()) == 2, timeout=60, what="two quarantined events on the page")
        quarantined = rows()
        assert quarantined["insert"]["namespace"] == ns
        assert json.loads(quarantined["insert"]["key"]) == {"_id": 100}
        undecodable_id = quarantined["(undecodable)"]["id"]
        refused_id = quarantined["insert"]["id"]

        def click(css):
            def clicked():
                try:
                    browser.find_element(By.CSS_SELECTOR, css).click()
                    return True
                except StaleElementReferenceException:
                    return False  # redrawn meanwhile: find it again
            stack.wait_for(clicked, timeout=30, what=f"a click on {css}")

        def show(row_id):
            click(f'#quarantine tr[data-id="{row_id}"]')
            stack.wait_for(lambda: attr("#q-detail", "data-id") == str(row_id) and text("#q-id") == f"#{row_id}",
                           timeout=30, what=f"the detail of quarantine row {row_id}")

        def retried():
            click("#q-retry")
            return stack.wait_for(lambda: (t := text("#q-outcome")) != "retrying..." and t, timeout=60,
                                  what="the retry's outcome")

        show(undecodable_id)
        assert "cannot be decoded" in text("#q-document")
        outcome = retried()
        assert outcome.startswith("Not retried: its event cannot be decoded"), outcome

        show(refused_id)
        reason = text("#q-error")
        assert "small_n" in reason, reason  # MySQL's CHECK constraint error
        document = text("#q-document")
        assert '"n": 5000' in document and '"name": "too big"' in document, document
        assert text("#q-state") == "pending"
        assert attr("#q-retry", "disabled") is None
        shot = tmp_path / "status-page.png"
        assert browser.save_screenshot(str(shot))
        if os.environ.get("M2M_UPDATE_SCREENSHOT") == "1":
            shutil.copy(shot, stack.ROOT / "docs" / "status-page.png")

        # Requests the page refuses: no token, another site, a name instead of an address.
        api = f"{url}/api/quarantine/{refused_id}/retry"
        status, body = post(api)
        assert status == 403 and "token" in body, body
        token = urllib.request.urlopen(url + "/api/status", timeout=60).read().decode()
        token = re.search(r'"token":"([0-9a-f]+)"', token).group(1)
        status, body = post(api, {"X-M2M-Token": token, "Origin": "http://evil.example"})
        assert status == 403 and "another site" in body, body
        status, body = post(api, {"X-M2M-Token": token, "Host": "evil.example"})
        assert status == 403 and "not by the name 'evil.example'" in body, body
        assert count("SELECT COUNT(*) FROM orders WHERE `_id`=100") == 0

        # The retry from the page: the row lands in MySQL, the event is done.
        outcome = retried()
        assert outcome.startswith("Retried: ") and "written from MongoDB's current document" in outcome, outcome
        with conn.cursor() as cur:
            cur.execute("SELECT n, name FROM orders WHERE `_id`=100")
            assert cur.fetchall() == ((5000, "too big"),)
        assert count(pending, group) == 1
        assert text("#q-state").startswith("done ")
        assert attr("#q-retry", "disabled") is not None
        stack.wait_for(lambda: cell("quarantined") == "1", timeout=60, what="the page to count 1 pending")
        assert len(rows()) == 1
        click("#show-done")
        stack.wait_for(lambda: len(rows()) == 2, timeout=30, what="the done event listed again")
        assert page.proc.poll() is None
    finally:
        if browser:
            browser.quit()
        if page:
            assert page.stop() == 0, page.log()[-3000:]
        if apply:
            apply.stop()
        capture.stop()


def test_page_without_mongodb_refuses_retries_and_says_why(tmp_path, mysql_db):
    database, _ = mysql_db
    page, url = start_page(tmp_path, database, stack.unique("g"), stack.unique("sp"))
    try:
        status = urllib.request.urlopen(url + "/api/status", timeout=60)
        assert "default-src 'self'" in status.headers["Content-Security-Policy"]
        body = status.read().decode()
        assert '"enabled":false' in body and "--mongo-uri" in body, body
        code, body = post(url + "/api/quarantine/1/retry")
        assert code == 403 and "--mongo-uri" in body, body
        with urllib.request.urlopen(url + "/", timeout=60) as index:
            assert index.headers["Content-Type"].startswith("text/html")
            assert b'<script src="/status.js"' in index.read()
    finally:
        assert page.stop() == 0, page.log()[-3000:]


def test_page_port_in_use_is_an_error():
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([str(stack.BINARY), "status", "--serve", "--serve-port", str(port),
                                 "--kafka-bootstrap", stack.KAFKA_BOOTSTRAP], capture_output=True, text=True,
                                timeout=120)
    assert result.returncode == 1, result
    assert f"cannot serve the status page on 127.0.0.1:{port}" in result.stderr
