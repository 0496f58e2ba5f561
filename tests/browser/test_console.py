"""The staff console and the customer's pages in a real browser (Debian's Chromium through Selenium),
against the real processes tests/browser/run started. Each check raises on failure; the script
exits non-zero on the first one, naming it.

The story: a counter agent registers a complaint through the form (a bad phone number first, whose
error shows beside the field); the assigned agent signs in, finds it in their queue, reads the text,
investigates, proposes a resolution, records the acceptance and closes it with a responsible link,
cause and outcome; the customer opens the survey link from their text message and answers "not
resolved"; the province supervisor signs in with a second factor and sees the second complaint on
the board. Then the refusals: a sibling unit's agent cannot open the case by URL, a form without the
CSRF token is refused, a locked account stays locked. The customer looks the complaint up with a
one-time code. axe finds no serious or critical violation on the main pages."""
import base64
import hashlib
import hmac
import json
import os
import re
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from axe_selenium_python import Axe
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait

OFFSET = int(os.environ["REDRESS_BROWSER_OFFSET"])
CONSOLE = f"http://127.0.0.1:{8087 + OFFSET}"
SURVEYS = f"http://127.0.0.1:{8083 + OFFSET}"
PASSWORD = os.environ["REDRESS_BROWSER_PASSWORD"]
MESSAGES = os.environ["REDRESS_BROWSER_MESSAGES"]
SHOTS = os.environ["REDRESS_BROWSER_SCREENSHOTS"]
PHONE = "13912345678"
checks = []


CURRENT = []


def show_page():
    """What the browser showed, so a failure in CI can be read without a rerun."""
    for driver in CURRENT[-1:]:
        try:
            print(f"# at {driver.current_url}: {driver.find_element(By.TAG_NAME, 'main').text[:600]}", file=sys.stderr)
        except Exception:  # noqa: BLE001
            pass


def check(condition, what):
    if not condition:
        show_page()
        raise AssertionError(what)
    checks.append(what)
    print(f"ok - {what}", flush=True)


def sql(query):
    env = dict(os.environ, PGUSER="redress", PGDATABASE="redress", PGHOST="127.0.0.1", PGPORT=os.environ["REDRESS_PG_PORT"])
    return subprocess.run([os.environ["REDRESS_BROWSER_PSQL"], "-Atc", query], env=env, check=True, capture_output=True, text=True).stdout.strip()


def eventually(what, probe, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out: {what}")


def totp(url):
    """RFC 6238, as an authenticator app computes it from the otpauth:// URL."""
    query = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)
    secret = query["secret"][0]
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    digest = hmac.new(key, struct.pack(">Q", int(time.time()) // 30), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    return "%06d" % ((struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF) % 1_000_000)


def messages_to(phone):
    if not os.path.exists(MESSAGES):
        return []
    with open(MESSAGES, encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip() and json.loads(line)["to"] == phone]


def browser(width=1366, height=768):
    options = webdriver.ChromeOptions()
    for argument in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={width},{height}", "--lang=zh-CN"]:
        options.add_argument(argument)
    # A Chinese office's browser: Accept-Language zh-CN (headless Chromium otherwise sends en-US).
    options.add_experimental_option("prefs", {"intl.accept_languages": "zh-CN,zh"})
    options.binary_location = "/usr/bin/chromium"
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    CURRENT.append(driver)
    return driver


def submit(driver, element, confirm=False):
    """Clicks a submit button and waits for the next page: a form post navigates, and a check run
    before the new page is there would read the old one. `confirm`: the page's script asks first."""
    old = driver.find_element(By.TAG_NAME, "html")
    element.click()
    if confirm:
        WebDriverWait(driver, 10).until(expected_conditions.alert_is_present()).accept()
    WebDriverWait(driver, 30).until(lambda _: gone(old))


def gone(element):
    """Whether the element's page was replaced (this Chromium reports it as a stale element or as
    a node no longer in the document)."""
    try:
        element.is_enabled()
        return False
    except WebDriverException:
        return True


def shot(driver, name):
    """The whole page from its top, as tall as it is (up to 2400 px)."""
    os.makedirs(SHOTS, exist_ok=True)
    size = driver.get_window_size()
    height = driver.execute_script("return document.documentElement.scrollHeight")
    # The window is taller than the page area by the browser's own frame: add it, or the bottom is cut off.
    frame = driver.execute_script("return window.outerHeight - window.innerHeight")
    driver.set_window_size(size["width"], min(max(height + frame, size["height"]), 2400))
    driver.execute_script("window.scrollTo(0, 0)")
    driver.save_screenshot(os.path.join(SHOTS, name + ".png"))
    driver.set_window_size(size["width"], size["height"])


def accessible(driver, page):
    axe = Axe(driver)
    axe.inject()
    result = axe.run()
    bad = [f"{v['id']} ({v['impact']}): {v['help']} — {len(v['nodes'])} node(s), e.g. {v['nodes'][0]['html'][:120]}"
           for v in result["violations"] if v["impact"] in ("serious", "critical")]
    check(not bad, f"axe finds no serious or critical violation on the {page}: {bad}")


def sign_in(driver, staff, password=PASSWORD, code=None):
    driver.delete_all_cookies()
    driver.get(CONSOLE + "/login")
    driver.find_element(By.ID, "f-staffId").send_keys(staff)
    driver.find_element(By.ID, "f-password").send_keys(password)
    if code:
        driver.find_element(By.ID, "f-totp").send_keys(code)
    submit(driver, driver.find_element(By.ID, "sign-in"))


def act(driver, action, fields=None, selects=None):
    """Opens an action's form on the case page, fills it and sends it."""
    details = driver.find_element(By.ID, f"a-{action}")
    if details.get_attribute("open") is None:
        details.find_element(By.TAG_NAME, "summary").click()
    for name, value in (selects or {}).items():
        Select(driver.find_element(By.ID, f"f-{action}-{name}")).select_by_value(value)
    for name, value in (fields or {}).items():
        element = driver.find_element(By.ID, f"f-{action}-{name}")
        element.clear()
        element.send_keys(value)
    button = driver.find_element(By.ID, f"do-{action}")
    submit(driver, button, confirm=button.get_attribute("data-confirm") is not None)


def main():
    driver = browser()
    try:
        # The sign-in page.
        driver.get(CONSOLE + "/login")
        check(driver.title.startswith("员工登录"), "the sign-in page is in Chinese first")
        headers = urllib.request.urlopen(CONSOLE + "/login").headers
        check("script-src 'self'" in headers["Content-Security-Policy"] and headers["X-Frame-Options"] == "DENY",
              "pages carry a Content-Security-Policy without inline scripts and X-Frame-Options: DENY")
        accessible(driver, "sign-in page")
        shot(driver, "login")

        # 受理登记: the counter agent registers a complaint; intake's field errors show beside the fields.
        sign_in(driver, "GD-SZ-AGE01")
        check(driver.current_url.endswith("/queue/mine"), "an agent lands on their queue after signing in")
        driver.get(CONSOLE + "/complaints/new")
        Select(driver.find_element(By.ID, "f-channel")).select_by_value("branch_counter")
        driver.find_element(By.ID, "f-customer.name").send_keys("王小明")
        driver.find_element(By.ID, "f-customer.phone").send_keys("123")
        driver.find_element(By.ID, "f-subject").send_keys("柜面服务态度差")
        content = "上周五在南山营业厅办理保全业务时，柜员态度冷淡，让我排了两个小时的队，还说材料不全不给办理。"
        driver.find_element(By.ID, "f-content").send_keys(content)
        submit(driver, driver.find_element(By.ID, "register"))
        error = driver.find_element(By.ID, "e-customer.phone").text
        check("11" in error, f"a bad phone number is refused with its error beside the field: {error}")
        check(driver.find_element(By.ID, "f-content").get_attribute("value") == content, "the form keeps what was typed after a refusal")
        accessible(driver, "registration form with errors")
        phone = driver.find_element(By.ID, "f-customer.phone")
        phone.clear()
        phone.send_keys(PHONE)
        submit(driver, driver.find_element(By.ID, "register"))
        flash = driver.find_element(By.CSS_SELECTOR, ".flash").text
        number = flash.split("投诉编号 ")[1].split(" ")[0]
        check(number.startswith("GD-SZ-"), f"the complaint is registered and its number shown: {number}")
        check(PHONE not in driver.current_url and "王小明" not in driver.current_url, "no personal data in the URL after registering")
        shot(driver, "new-complaint")

        # Routing assigns it; the assigned agent signs in and works it from their queue.
        owner = eventually("routing assigns the complaint", lambda: sql(f"SELECT assignee FROM complaints WHERE number = '{number}' AND assignee IS NOT NULL"))
        sign_in(driver, owner)
        driver.get(CONSOLE + "/queue/mine")
        link = driver.find_element(By.LINK_TEXT, number)
        accessible(driver, "queue")
        shot(driver, "queue")
        submit(driver, link)
        check(driver.find_element(By.ID, "complaint-text").text == content, "the handler reads the complaint as the customer gave it")
        check("139****5678" in driver.find_element(By.ID, "customer-phone").text, "the customer's phone is masked on the case page")
        check(driver.execute_script("return document.querySelector('meta[http-equiv]') === null"), "no meta refresh or other tricks on the case page")
        act(driver, "start_investigation")
        check("调查中" in driver.find_element(By.CSS_SELECTOR, ".badges").text, "starting the investigation moves the case to 调查中")
        # 转相关部门调查: the owner asks the city's claims department; its coordinator answers on the oversight page.
        driver.find_element(By.CSS_SELECTOR, "#a-inquiry > summary").click()
        Select(driver.find_element(By.ID, "f-inquiry-department")).select_by_value("claims")
        driver.find_element(By.ID, "f-inquiry-question").send_keys(f"请核实客户保全业务办理记录，客户电话{PHONE}")
        submit(driver, driver.find_element(By.ID, "do-inquiry"))
        check("转相关部门调查" in driver.find_element(By.CSS_SELECTOR, ".timeline").text, "the inquiry joins the case's history")
        act(driver, "propose_resolution", {"text": ""})
        check(driver.find_elements(By.ID, "e-propose_resolution-text"), "an empty proposal is refused with the error beside the field")
        act(driver, "propose_resolution", {"text": "向客户致歉，并安排专人上门办理保全业务。"})
        act(driver, "customer_accepts")
        check("已解决" in driver.find_element(By.CSS_SELECTOR, ".badges").text, "the customer's acceptance resolves the case")
        accessible(driver, "case page")
        shot(driver, "case")
        act(driver, "close", {"outcome": "经核实，柜员服务态度不当，已对其批评教育并安排专人上门为您办理。"},
            {"liability": "liable", "responsibleLink": "customer_service", "causeCode": "service_attitude"})
        check("已结案" in driver.find_element(By.CSS_SELECTOR, ".badges").text, "closing with a responsible link, cause and outcome closes the case")
        history = driver.find_element(By.CSS_SELECTOR, ".timeline").text
        check("结案" in history and "客户接受方案" in history, "the history shows each step")

        # The customer answers the return visit from the text message: not resolved.
        invitation = eventually("the return-visit text reaches the customer's phone",
                                lambda: [m for m in messages_to(PHONE) if m["template"] == "survey.requested.customer"])
        link = re.search(r"https?://\S+/s/[A-Za-z0-9_-]+", invitation[0]["body"]).group(0)
        phone_browser = browser(390, 844)
        try:
            phone_browser.get(link)
            check(number in phone_browser.find_element(By.TAG_NAME, "main").text, "the survey page names the complaint")
            accessible(phone_browser, "survey page (phone)")
            shot(phone_browser, "survey-phone")
            submit(phone_browser, phone_browser.find_element(By.ID, "send"))
            check(phone_browser.find_elements(By.CSS_SELECTOR, ".error-summary"), "an empty survey answer is refused, errors summarised at the top")
            phone_browser.find_element(By.CSS_SELECTOR, "label[for=score-2]").click()
            phone_browser.find_element(By.CSS_SELECTOR, "label[for=resolved-no]").click()
            phone_browser.find_element(By.ID, "comment").send_keys("柜员还是没有道歉。")
            submit(phone_browser, phone_browser.find_element(By.ID, "send"))
            check("上一级" in phone_browser.find_element(By.ID, "next-step").text, "the thank-you page says the complaint is looked at again one level up")
            phone_browser.get(link)
            check("已使用或已过期" in phone_browser.find_element(By.TAG_NAME, "main").text, "a used survey link says so and nothing more")

            # 投诉进度查询: the number, then the code sent to the phone on file.
            phone_browser.get(SURVEYS + "/status")
            accessible(phone_browser, "status look-up (phone)")
            phone_browser.find_element(By.ID, "number").send_keys("GD-SZ-20000101-999999")
            submit(phone_browser, phone_browser.find_element(By.ID, "get-code"))
            unknown_page = phone_browser.find_element(By.ID, "code-sent").text
            phone_browser.find_element(By.ID, "code").send_keys("123456")
            submit(phone_browser, phone_browser.find_element(By.ID, "check"))
            wrong_number = phone_browser.find_element(By.ID, "code-error").text
            phone_browser.get(SURVEYS + "/status")
            phone_browser.find_element(By.ID, "number").send_keys(number)
            submit(phone_browser, phone_browser.find_element(By.ID, "get-code"))
            check(phone_browser.find_element(By.ID, "code-sent").text == unknown_page, "an unknown number and a real one get the same page")
            sms = eventually("the look-up code reaches the phone on file",
                             lambda: [m for m in messages_to(PHONE) if m["template"] == "status.code.customer"])
            code = re.search(r"验证码为(\d{6})", sms[-1]["body"]).group(1)
            wrong = "000000" if code != "000000" else "111111"
            phone_browser.find_element(By.ID, "code").send_keys(wrong)
            submit(phone_browser, phone_browser.find_element(By.ID, "check"))
            check(phone_browser.find_element(By.ID, "code-error").text == wrong_number, "a wrong code and a wrong number get the same answer")
            phone_browser.find_element(By.ID, "code").send_keys(code)
            submit(phone_browser, phone_browser.find_element(By.ID, "check"))
            answer = phone_browser.find_element(By.ID, "status-answer").text
            check(number in answer and "已由" in answer, f"the right code shows the status in one sentence: {answer}")
            check("王" not in answer and PHONE[-4:] not in phone_browser.page_source, "the status page shows no personal data")
            shot(phone_browser, "status-phone")
        finally:
            phone_browser.quit()

        # The province supervisor (second factor required) sees the second complaint on the board.
        sign_in(driver, "GD-SUP01")
        check("动态验证码" in driver.find_element(By.CSS_SELECTOR, ".error-summary").text, "a supervisor without the code is asked for it")
        sign_in(driver, "GD-SUP01", code=totp(os.environ["REDRESS_BROWSER_TOTP_URL"]))
        second = number + "-R1"

        def on_board():
            driver.get(CONSOLE + "/board")
            return driver.find_elements(By.CSS_SELECTOR, f"section[aria-labelledby=b-second] a[href='/cases/{second}']")
        eventually("the second complaint reaches the province supervisor's board", on_board, timeout=90)
        check(True, "the province supervisor sees the second complaint on the board")
        accessible(driver, "supervisor board")
        shot(driver, "board")
        # 典型案例: the province marks the closed case for training; the summary's phone number is masked.
        driver.get(CONSOLE + f"/cases/{number}")
        driver.find_element(By.CSS_SELECTOR, "#a-typical > summary").click()
        driver.find_element(By.ID, "f-typical-summary").send_keys(f"柜面服务态度问题，客户来电{PHONE}后升级处理")
        submit(driver, driver.find_element(By.ID, "do-typical"))
        listed = driver.find_element(By.TAG_NAME, "main").text
        check(driver.current_url.endswith("/typical") and number in listed and "139****5678" in listed and PHONE not in driver.page_source,
              "a typical case is listed with its summary's phone number masked")
        accessible(driver, "typical cases")
        driver.get(CONSOLE + "/staff")
        accessible(driver, "staff administration")
        shot(driver, "staff")
        # 定期分析报告: the province's report for this quarter, its charts drawn as SVG on the server, printable.
        def in_report():
            driver.get(CONSOLE + "/reports?unit=GD")
            figures = driver.find_elements(By.CSS_SELECTOR, ".figures .fig-value")
            return bool(figures) and figures[0].text.strip() not in ("", "0")
        eventually("the complaint reaches the province's report", in_report, timeout=60)
        check(len(driver.find_elements(By.CSS_SELECTOR, "svg.chart[role=img] title")) >= 4, "the report's charts are SVG images with titles")
        printable = driver.execute_script(
            "return [...document.styleSheets].some(s => [...s.cssRules].some(r => r.media && r.media.mediaText.includes('print')))")
        check(printable, "the report has a print stylesheet")
        labels = [t.get_attribute("textContent") for t in driver.find_elements(By.CSS_SELECTOR, "svg.chart text")]
        check("客户服务环节" in labels and "customer_service" not in labels,
              "the responsible links are named as the closure taxonomy names them, not by code")
        check(driver.find_element(By.PARTIAL_LINK_TEXT, "CSV").get_attribute("href").endswith("format=csv"), "the report offers its CSV")
        accessible(driver, "report")
        shot(driver, "report")

        # The department's coordinator reads the inquiry (the phone masked) and answers it; the answer joins the case.
        sign_in(driver, "GD-SZ-CLM01")
        driver.get(CONSOLE + "/oversight")
        asked = driver.find_element(By.CSS_SELECTOR, "section[aria-labelledby=o-inquiries]")
        check(number in asked.text and "139****5678" in asked.text and PHONE not in driver.page_source,
              "the coordinator sees the inquiry addressed to the department, personal data masked")
        accessible(driver, "oversight page (coordinator)")
        shot(driver, "oversight")
        answer_box = asked.find_element(By.CSS_SELECTOR, "textarea[name=findings]")
        answer_box.send_keys("系统记录显示柜面于11月20日受理保全申请，未按时办理。")
        submit(driver, asked.find_element(By.CSS_SELECTOR, "button[id^=do-answer-]"))
        check("已保存" in driver.find_element(By.CSS_SELECTOR, ".flash").text, "the answer is saved")
        check(sql(f"SELECT count(*) FROM case_events e JOIN complaints c ON c.id = e.complaint_id WHERE c.number = '{number}' AND e.action = 'answer_inquiry'") == "1",
              "the answer is in the case's history")
        # The province supervisor's oversight page: spot-checks to draw and decide, corrective actions, the register.
        sign_in(driver, "GD-SUP01", code=totp(os.environ["REDRESS_BROWSER_TOTP_URL"]))
        driver.get(CONSOLE + "/oversight")
        headings = [h.text for h in driver.find_elements(By.CSS_SELECTOR, "main h2")]
        check(headings == ["部门调查", "待结论的抽查", "整改", "无理缠访备案"], f"the supervisor has every oversight section: {headings}")
        accessible(driver, "oversight page (supervisor)")

        # A sibling unit's agent cannot open the case by its URL.
        sign_in(driver, "GD-GZ-AGE01")
        driver.get(CONSOLE + f"/cases/{number}")
        check("没有找到该案件" in driver.find_element(By.TAG_NAME, "main").text and content not in driver.page_source,
              "a sibling unit's agent cannot open the case by URL")

        # A form without the CSRF token is refused, and nothing changes.
        sign_in(driver, owner)
        cookie = "; ".join(f"{c['name']}={c['value']}" for c in driver.get_cookies())
        version = sql(f"SELECT version FROM complaints WHERE number = '{number}'")
        request = urllib.request.Request(CONSOLE + f"/cases/{number}/actions/add_note", method="POST",
                                         data=f"version={version}&text=forged".encode(), headers={"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"})
        try:
            urllib.request.urlopen(request)
            status = 200
        except urllib.error.HTTPError as refused:
            status = refused.code
        check(status == 403 and sql(f"SELECT version FROM complaints WHERE number = '{number}'") == version,
              "a form without the CSRF token is refused and changes nothing")

        # Five failures lock the account; the right password is refused until the lock ends.
        for _ in range(5):
            sign_in(driver, "GD-SZ-AGE02", password="wrong-password")
        sign_in(driver, "GD-SZ-AGE02")
        check("锁定" in driver.find_element(By.CSS_SELECTOR, ".error-summary").text and driver.current_url.endswith("/login"),
              "a locked account stays locked, even with the right password")

        # Signing out ends the session everywhere.
        sign_in(driver, owner)
        old = driver.get_cookies()
        submit(driver, driver.find_element(By.CSS_SELECTOR, "form[action='/logout'] button"))
        for c in old:
            driver.add_cookie({"name": c["name"], "value": c["value"]})
        driver.get(CONSOLE + "/queue/mine")
        check(driver.current_url.endswith("/login"), "after signing out the old session cookie opens nothing")
    except Exception as failure:
        if not isinstance(failure, AssertionError):
            show_page()
        raise
    finally:
        driver.quit()
    print(f"browser test: {len(checks)} checks passed")


if __name__ == "__main__":
    try:
        main()
    except Exception as failure:  # noqa: BLE001 - any failure fails the run, with its words
        if not isinstance(failure, AssertionError):
            import traceback
            traceback.print_tb(failure.__traceback__, file=sys.stderr)
        print(f"not ok - {str(failure).splitlines()[0] if str(failure) else repr(failure)}", file=sys.stderr)
        sys.exit(1)
