import pytest

pytestmark = pytest.mark.django_db


def test_the_price_list_shows_the_help_pages_figures(client):
    page = client.get("/").content.decode()
    for text in (
        "1 credit per 10 tokens",
        "3 credits per 10 tokens",
        "15 credits per 10 tokens",
        "500 credits per page",
        "5,000 credits",
        "1,500 credits",
        "$29",
        "80K credits / user",
        "300K credits",
        "-15% vs base",
        "-30% vs base",
        "-40% vs base",
        "$108",
    ):
        assert text in page, text
