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
import urllib.error
import urllib.request

from confluent_kafka import Producer
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
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
                "--window-size=1500,1900", "--no-first-run", "--disable-extensions"):
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
        apply = pipeline.start_apply(tmp_path, database, group, topics=[topic], extra=["--max-batch-ms", "100"])

        def count(sql, *args):
            with conn.cursor() as cur:
                cur.execute(sql, args)
                return cur.fetchone()[0]
        stack.wait_for(lambda: apply.assert_running() or count("SELECT COUNT(*) FROM information_schema.TABLES "
                                                                "WHERE TABLE_SCHEMA=%s AND TABLE_NAME='orders'",
                                                                database) == 1
                       and count("SELECT COUNT(*) FROM orders") == 40, timeout=180, what="the snapshot in MySQL")

        # MySQL refuses the next document: quarantined. And a record nobody can decode.
        with conn.cursor() as cur:
            cur.execute("ALTER TABLE orders ADD CONSTRAINT small_n CHECK (n < 1000)")
        orders.insert_one({"_id": 100, "n": 5000, "name": "too big"})
        orders.insert_many([{"_id": i, "n": i, "name": f"o{i}"} for i in range(40, 50)])
        producer = Producer({"bootstrap.servers": stack.KAFKA_BOOTSTRAP})
        producer.produce(topic, key=b'{"id": 7}', value=b"not json{")
        assert producer.flush(60) == 0
        pending = "SELECT COUNT(*) FROM _m2m_quarantine WHERE group_id=%s AND replayed_at IS NULL"
        stack.wait_for(lambda: apply.assert_running() or (count(pending, group) == 2
                                                          and count("SELECT COUNT(*) FROM orders") == 50),
                       timeout=180, what="apply to quarantine 2 events and apply the 10 others")
        with conn.cursor() as cur:  # the cause fixed: a retry can write the document now
            cur.execute("ALTER TABLE orders DROP CONSTRAINT small_n")

        page, url = start_page(tmp_path, database, group, prefix, "--mongo-uri", stack.MONGO_URI)
        browser = chromium()
        browser.get(url + "/")

        def cell(field):
            found = browser.find_elements(By.CSS_SELECTOR, f'#collections tr[data-topic="{topic}"] td[data-field="{field}"]')
            return found[0].text if found else None

        # The numbers MySQL and Kafka have: every record applied, nothing waiting.
        stored = "SELECT SUM(applied_events) FROM _m2m_offsets WHERE group_id=%s AND topic=%s"
        applied = count(stored, group, topic)
        kafka_end = pipeline.topic_end_offsets(topic)
        assert applied >= 40 + 11 + 1  # snapshot, the stream's changes, the undecodable record
        stack.wait_for(lambda: cell("applied_events") == f"{applied:,}" and cell("lag_events") == "0",
                       timeout=60, what=f"the page to show {applied} applied and no lag")
        assert cell("collection") == ns
        assert cell("tables") == "orders"
        assert cell("end_offset") == f"{kafka_end:,}"
        assert cell("quarantined") == "2"
        assert cell("snapshot") == "done: 40 of 40 documents, 4/4 chunks"
        capture_row = browser.find_element(By.CSS_SELECTOR, '#captures tr[data-capture="sp"]').text
        assert f"collection:{ns}" in capture_row and "done" in capture_row
        assert "apply group " + group in browser.find_element(By.ID, "summary").text

        # The charts fill with the page's samples, one line per collection.
        def line(chart):
            return browser.find_element(By.CSS_SELECTOR, f'#chart-{chart} path[data-topic="{topic}"]')
        stack.wait_for(lambda: int(line("applied_per_s").get_attribute("data-points")) >= 3, timeout=60,
                       what="three samples in the throughput chart")
        assert float(line("lag_events").get_attribute("data-last")) == 0
        assert float(line("lag_seconds").get_attribute("data-last")) == 0
        assert ns in browser.find_element(By.ID, "legend").text

        # The quarantine: both events, each with its reason; the refused one with its document.
        def rows():
            return {r.find_element(By.CSS_SELECTOR, 'td[data-field="event"]').text: r
                    for r in browser.find_elements(By.CSS_SELECTOR, "#quarantine tbody tr")}
        stack.wait_for(lambda: len(rows()) == 2, timeout=60, what="two quarantined events on the page")
        quarantined = rows()
        assert quarantined["insert"].find_element(By.CSS_SELECTOR, 'td[data-field="namespace"]').text == ns
        key = quarantined["insert"].find_element(By.CSS_SELECTOR, 'td[data-field="document_key"]').text
        assert json.loads(key) == {"_id": 100}
        undecodable_id = int(quarantined["(undecodable)"].get_attribute("data-id"))
        refused_id = int(quarantined["insert"].get_attribute("data-id"))

        def show(row_id):
            browser.find_element(By.CSS_SELECTOR, f'#quarantine tr[data-id="{row_id}"]').click()
            stack.wait_for(lambda: browser.find_element(By.ID, "q-detail").get_attribute("data-id") == str(row_id)
                           and browser.find_element(By.ID, "q-id").text == f"#{row_id}", timeout=30,
                           what=f"the detail of quarantine row {row_id}")

        show(undecodable_id)
        assert "cannot be decoded" in browser.find_element(By.ID, "q-document").text
        browser.find_element(By.ID, "q-retry").click()
        outcome = stack.wait_for(lambda: (t := browser.find_element(By.ID, "q-outcome").text) != "retrying..." and t,
                                 timeout=60, what="the retry's outcome")
        assert outcome.startswith("Not retried: its event cannot be decoded"), outcome

        show(refused_id)
        reason = browser.find_element(By.ID, "q-error").text
        assert "small_n" in reason, reason  # MySQL's CHECK constraint error
        document = browser.find_element(By.ID, "q-document").text
        assert '"n": 5000' in document and '"name": "too big"' in document, document
        assert browser.find_element(By.ID, "q-state").text == "pending"
        assert browser.find_element(By.ID, "q-retry").is_enabled()
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
        browser.find_element(By.ID, "q-retry").click()
        outcome = stack.wait_for(lambda: (t := browser.find_element(By.ID, "q-outcome").text) != "retrying..." and t,
                                 timeout=60, what="the retry's outcome")
        assert outcome.startswith("Retried: ") and "written from MongoDB's current document" in outcome, outcome
        with conn.cursor() as cur:
            cur.execute("SELECT n, name FROM orders WHERE `_id`=100")
            assert cur.fetchall() == ((5000, "too big"),)
        assert count(pending, group) == 1
        assert browser.find_element(By.ID, "q-state").text.startswith("done ")
        assert not browser.find_element(By.ID, "q-retry").is_enabled()
        stack.wait_for(lambda: cell("quarantined") == "1", timeout=60, what="the page to count 1 pending")
        browser.find_element(By.ID, "show-done").click()
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
