"""The dashboard in headless Chromium, against the real server.

Usage: python3 Tests/browser/dashboard_test.py BINARY SCREENSHOT.png

Starts `BINARY serve` on a free port (built-in simulator, shared callback
token "ui"), then checks that the page loads with no console errors, that a
task submitted through the form appears, and that callbacks change a task's
status on the page without a reload. Saves a screenshot.
"""
import json
import re
import subprocess
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

binary, screenshot = sys.argv[1], sys.argv[2]
server = subprocess.Popen(
    [binary, "serve", "--host", "127.0.0.1", "--port", "0", "--log-level", "info"],
    env={"HAILUO_HOOK_CALLBACK_TOKEN": "ui", "PATH": "/usr/bin:/bin"},
    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
checks = []


def check(name, ok):
    checks.append((name, ok))
    print(("ok   " if ok else "FAIL ") + name, flush=True)


def callback(base, task_id, status):
    request = urllib.request.Request(
        base + "/v1/callbacks/ui", method="POST",
        data=json.dumps({"task_id": task_id, "status": status, "file_id": "F-" + task_id}).encode(),
        headers={"Content-Type": "application/json"})
    return urllib.request.urlopen(request).status


driver = None
try:
    port = None
    deadline = time.time() + 20
    while port is None and time.time() < deadline:
        line = server.stdout.readline()
        match = re.search(r"port=(\d+)", line)
        if match:
            port = int(match.group(1))
    assert port, "the server did not say its port"
    base = f"http://127.0.0.1:{port}"

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    wait = WebDriverWait(driver, 20)

    driver.get(base + "/")
    wait.until(EC.text_to_be_present_in_element((By.ID, "live"), "live"))
    check("the page loads and follows /v1/events", True)
    driver.execute_script("window.__loadedOnce = true")

    # A task submitted through the form appears (the built-in simulator then runs it to success).
    driver.find_element(By.NAME, "prompt").send_keys("A man picks up a book [Pedestal up], then reads [Static shot].")
    driver.find_element(By.CSS_SELECTOR, "#submit button").click()
    wait.until(EC.text_to_be_present_in_element((By.ID, "submit-result"), "submitted: task"))
    task_id = driver.find_element(By.ID, "submit-result").text.split()[-1]
    row = (By.CSS_SELECTOR, f'tr[data-task-id="{task_id}"]')
    wait.until(EC.presence_of_element_located(row))
    check("a task submitted through the form appears", True)
    wait.until(EC.text_to_be_present_in_element(row, "success"))
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f'tr[data-task-id="{task_id}"] a'))
    check("it reaches success with its video link, live", True)

    # Callbacks change a task on the page without a reload.
    assert callback(base, "UI-1", "processing") == 200
    ui_row = (By.CSS_SELECTOR, 'tr[data-task-id="UI-1"]')
    wait.until(EC.text_to_be_present_in_element(ui_row, "processing"))
    assert callback(base, "UI-1", "success") == 200
    wait.until(EC.text_to_be_present_in_element(ui_row, "success"))
    check("callbacks change a task's status on the page without a reload",
          driver.execute_script("return window.__loadedOnce === true"))

    # The task's events, on a click.
    driver.find_element(*ui_row).click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#detail-events li")) == 2)
    check("a click shows the task's events", True)

    # The filter.
    status_filter = Select(driver.find_element(By.ID, "filter"))
    status_filter.select_by_visible_text("processing")
    check("the status filter hides the others", len(driver.find_elements(By.CSS_SELECTOR, "#tasks tr")) == 0)
    status_filter.select_by_visible_text("all")
    check("and shows them again", len(driver.find_elements(By.CSS_SELECTOR, "#tasks tr")) == 2)

    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    for entry in errors:
        print("console:", entry["message"])
    check("no console errors", not errors)
    driver.save_screenshot(screenshot)
    print("screenshot:", screenshot)
except Exception as error:  # noqa: BLE001 - report any failure as a failed check
    check(f"unexpected: {error!r}", False)
    if driver:
        driver.save_screenshot(screenshot)
finally:
    if driver:
        driver.quit()
    server.terminate()
    server.wait(timeout=15)

passed = sum(1 for _, ok in checks if ok)
failed = len(checks) - passed
print(f"browser: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
