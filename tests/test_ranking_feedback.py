"""What "more like this" and "less like this" do to the ranking: pure, no database (the
simulated readers of ``evaluate_ranking --feedback`` measure the same on the judged set)."""

from papers.ranking import FLOOR, Interests, PaperText, Pick, fit_model, rank_chunk

GRAPHS = ("Graph neural networks", "Graph neural networks and message passing on graphs.")


def paper(key: int, title: str, abstract: str, trending: float = 0.01) -> PaperText:
    return PaperText(key, title, abstract, trending=trending)


def keys(picks: list[Pick]) -> list[int]:
    return [p.key for p in picks]


def molecule_papers() -> list[PaperText]:
    """Papers of another area of the topic, to stand for what the trending paper is about."""
    return [
        paper(
            n,
            f"Graph neural networks for drug molecules, part {n}",
            "Graph neural networks predict the toxicity of drug molecules by message passing "
            "over atoms and chemical bonds.",
        )
        for n in range(1, 7)
    ]


def test_less_like_this_orders_the_matches_and_never_pushes_one_under_the_floor() -> None:
    disliked = [
        paper(
            n,
            f"Predicting the toxicity of drug molecules, part {n}",
            "We predict the toxicity of drug molecules from their atoms and chemical bonds.",
        )
        for n in range(1, 4)
    ]
    solvents = paper(
        20,
        "Predicting the toxicity of solvent molecules",
        "We predict the toxicity of solvent molecules from their atoms and chemical bonds "
        "with graph neural networks.",
    )
    traffic = paper(
        21,
        "Road traffic forecasting",
        "We forecast road traffic from sensors with graph neural networks and message passing.",
    )
    unrelated = paper(22, "Robot grasping from demonstrations", "Robots learn to grasp cups.")
    papers = [solvents, traffic, unrelated]
    model = fit_model([*disliked, *papers])
    plain = Interests(topics=[GRAPHS], trending_weight=0.0)
    picky = Interests(topics=[GRAPHS], trending_weight=0.0, disliked=disliked)

    before, after = rank_chunk(model, papers, [plain, picky], diversity=0)

    # The paper like the disliked ones falls far below what the floor asks of a match, yet
    # it is still one, after the other: it is about the reader's topic.
    solvents_before = next(p.relevance for p in before if p.key == solvents.key)
    assert keys(after) == [traffic.key, solvents.key]
    assert after[1].relevance < FLOOR < solvents_before


def test_three_likes_of_an_area_put_its_new_paper_above_the_trending_one() -> None:
    places = ["Paris", "Lagos", "Tokyo"]
    subjects = ["bus delays", "parking demand", "ride sharing"]
    liked = [
        paper(
            n,
            f"Forecasting {subject} in {place}",
            f"We forecast {subject} in {place} from city sensors, with road traffic as an input.",
        )
        for n, (subject, place) in enumerate(zip(subjects, places, strict=True), 1)
    ]
    roads = paper(
        10,
        "Road traffic forecasting for city roads",
        "We forecast road traffic on city roads from sensors, with graph neural networks.",
    )
    trending = paper(
        11,
        "Graph neural networks for drug molecules",
        "Graph neural networks predict the toxicity of drug molecules by message passing "
        "over atoms and chemical bonds on graphs.",
        trending=5.0,
    )
    model = fit_model([*liked, *molecule_papers(), roads, trending])
    once = Interests(topics=[GRAPHS], liked=liked[:1], trending_weight=0.3)
    thrice = Interests(topics=[GRAPHS], liked=liked, trending_weight=0.3)

    after_one, after_three = rank_chunk(model, [roads, trending], [once, thrice], diversity=0)

    # One "more like this" is a hint next to the topic; three on one area outweigh it.
    assert keys(after_one)[0] == trending.key
    assert keys(after_three)[0] == roads.key
