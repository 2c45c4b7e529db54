"""End to end in a real browser: Debian's chromium, headless, driven by Playwright against a live server.

Needs `apt-get install -y chromium` and `pip install playwright` (never `playwright install`: the system chromium
is used). Skipped with the reason when either is missing. Set GANFORGE_SCREENSHOTS=DIR to keep the screenshots.
"""

import os
import shutil
from pathlib import Path

import pytest

from serve_helpers import running_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip("chromium is not installed (apt-get install -y chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
pytest.importorskip("uvicorn", reason="the serve extra is not installed: pip install 'ganforge[serve]'")

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]


@pytest.fixture(scope="module")
def server(tiny_run):
    with running_server(tiny_run) as url:
        yield url


@pytest.fixture(scope="module")
def page(server):
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        yield page
        browser.close()


def image_state(page) -> tuple[str, str]:
    return page.eval_on_selector("#image", "img => [img.src, img.dataset.seed || '']")


def wait_for_new_image(page, old_src: str) -> None:
    page.wait_for_function("old => { const img = document.querySelector('#image');"
                           " return img.src !== old && img.complete && img.naturalWidth > 0; }", arg=old_src,
                           timeout=15000)


def screenshot(page, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    keep = os.environ.get("GANFORGE_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / name)


def test_generate_shows_a_new_image_and_the_seed_control_changes_it(page, server, tmp_path):
    page.goto(server + "/")
    page.wait_for_function("document.querySelector('#image').dataset.seed === '0'", timeout=15000)
    assert page.locator("#synthetic-label").is_visible()
    first_src, _ = image_state(page)

    page.click("#generate")  # noise "random" (the default): a new seed, a new image
    wait_for_new_image(page, first_src)
    second_src, second_seed = image_state(page)
    assert second_seed != "0" and page.input_value("#seed") == second_seed

    page.fill("#seed", "1234")
    page.dispatch_event("#seed", "change")
    wait_for_new_image(page, second_src)
    assert image_state(page)[1] == "1234" and "seed 1234" in page.inner_text("#caption")
    assert page.get_attribute("#download", "download") == "ganforge-seed1234-psi1.00.png"

    page.check("input[name=noise][value=fixed]")  # fixed noise: Generate keeps seed 1234
    third_src, _ = image_state(page)
    page.click("#generate")
    wait_for_new_image(page, third_src)
    assert image_state(page)[1] == "1234" and page.inner_text("#error") == ""
    screenshot(page, tmp_path, "generator.png")


def test_a_bad_latent_shows_the_servers_error(page, server):
    page.goto(server + "/")
    page.wait_for_function("document.querySelector('#image').dataset.seed === '0'", timeout=15000)
    page.fill("#latent", "1, 2, 3")
    page.click("#import")
    page.wait_for_function("document.querySelector('#error').textContent.includes('exactly 100 numbers')",
                           timeout=15000)


def test_run_page_shows_samples_and_losses(page, server, tmp_path):
    page.goto(server + "/run")
    for name in ("samples", "loss"):
        page.wait_for_function("id => { const img = document.getElementById(id);"
                               " return img.complete && img.naturalWidth > 0; }", arg=name, timeout=15000)
    assert "tick 2" in page.inner_text("#stats")
    screenshot(page, tmp_path, "run.png")


@pytest.fixture(scope="module")
def conditional_server(tiny_conditional_run):
    with running_server(tiny_conditional_run) as url:
        yield url


def image_pixels(page) -> list[int]:
    """The shown #image's RGBA pixels, read back through a canvas."""
    return page.eval_on_selector("#image", """img => { const canvas = document.createElement('canvas');
        canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
        const context = canvas.getContext('2d'); context.drawImage(img, 0, 0);
        return Array.from(context.getImageData(0, 0, canvas.width, canvas.height).data); }""")


def test_the_class_selector_of_a_conditional_run_redraws_image_and_strip_in_that_class(page, conditional_server,
                                                                                       tmp_path):
    page.goto(conditional_server + "/")
    page.wait_for_function("document.querySelector('#image').dataset.class === '0'", timeout=15000)
    page.wait_for_function("document.querySelector('#strip').naturalWidth > 0", timeout=15000)
    assert page.locator("#class-row").is_visible() and page.inner_text("#error") == ""
    image_src, strip_src, before = image_state(page)[0], page.get_attribute("#strip", "src"), image_pixels(page)
    page.select_option("#class", "7")
    wait_for_new_image(page, image_src)
    page.wait_for_function("old => document.querySelector('#strip').src !== old", arg=strip_src, timeout=15000)
    assert page.eval_on_selector("#image", "img => img.dataset.class") == "7" and image_pixels(page) != before
    assert "class 7" in page.inner_text("#caption") and page.inner_text("#error") == ""
    assert page.get_attribute("#download", "download") == "ganforge-seed0-class7-psi1.00.png"
    assert "class=7" in page.get_attribute("#download", "href")
    screenshot(page, tmp_path, "generator-conditional.png")


@pytest.fixture(scope="module")
def directions_server(tiny_run, tmp_path_factory):
    from ganforge.explore.direction_search import find_directions
    from ganforge.runs import load_generator

    generator, config, _ = load_generator(tiny_run)
    folder = tmp_path_factory.mktemp("browser-directions") / "dirs"
    find_directions(generator, config, "sefa", 12).save(folder)
    with running_server(tiny_run, directions=folder) as url:
        yield url


def test_a_direction_slider_redraws_the_image_and_its_link_reproduces_the_edit(page, directions_server, tmp_path):
    page.goto(directions_server + "/?seed=3")
    page.wait_for_function("document.querySelector('#image').dataset.seed === '3'", timeout=15000)
    assert page.locator("#directions").is_visible() and page.locator("#sliders input").count() == 10
    src, before = image_state(page)[0], image_pixels(page)
    page.eval_on_selector("#direction-0", "el => { el.value = 2; el.dispatchEvent(new Event('input')); }")
    wait_for_new_image(page, src)
    page.wait_for_function("document.querySelector('#image').dataset.edit === '0:2.0'", timeout=15000)
    edited = image_pixels(page)
    assert edited != before and "edit 0:2.0" in page.inner_text("#caption") and page.inner_text("#error") == ""
    link = page.url
    assert "seed=3" in link and "edit=0%3A2.0" in link
    screenshot(page, tmp_path, "generator-directions.png")
    page.goto(directions_server + "/")  # elsewhere, then back through the link alone
    page.goto(link)
    page.wait_for_function("document.querySelector('#image').dataset.edit === '0:2.0'", timeout=15000)
    page.wait_for_function("document.querySelector('#image').complete", timeout=15000)
    assert page.input_value("#direction-0") == "2" and image_pixels(page) == edited
