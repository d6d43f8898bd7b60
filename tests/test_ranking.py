"""The ranking on small catalogues built here: pure functions, no database."""

import json
import pickle
import random

import numpy as np
import pytest

from papers.ranking import (
    Interests,
    PaperText,
    Pick,
    Reason,
    Section,
    Signal,
    fit_model,
    profile_matrix,
    rank_catalogue,
    rank_chunk,
)
from papers.ranking.authors import name_of, same_person

DIFFUSION = PaperText(
    1,
    "Faster sampling for image generation",
    "We speed up sampling of diffusion models for image generation.",
)
APART = PaperText(
    2,
    "Diffusion in porous media: models and measurements",
    "Diffusion of heat through porous media is described by models that track diffusion at "
    "each scale. These models predict diffusion in soils, and models fit measured diffusion.",
)
GRAPHS = PaperText(
    3,
    "Message passing for molecules",
    "Graph neural networks predict molecular properties by message passing over atoms.",
)


def keys(picks: list[Pick]) -> list[int]:
    return [p.key for p in picks]


def only(interests: Interests, papers: list[PaperText], **options: float) -> list[Pick]:
    """Rank one subscriber's digest among ``papers`` (the model fitted on the same papers)."""
    return rank_chunk(fit_model(papers), papers, [interests], **options)[0]


def relevance_only(**fields: object) -> Interests:
    return Interests(trending_weight=0.0, **fields)  # type: ignore[arg-type]


def test_a_phrase_keyword_prefers_the_paper_with_the_exact_phrase() -> None:
    papers = [DIFFUSION, APART, GRAPHS]
    model = fit_model(papers)

    as_phrase = rank_catalogue(model, papers, Interests(keywords=["diffusion models"]))
    as_words = rank_catalogue(model, papers, Interests(keywords=["diffusion", "models"]))

    assert keys(as_phrase)[0] == DIFFUSION.key
    # The same words typed separately favour the paper that has them more often, apart.
    assert keys(as_words)[0] == APART.key


def test_excluded_keywords_remove_papers_whole_word_and_in_any_case() -> None:
    survey = PaperText(4, "A Survey of Diffusion Models", "We review diffusion models.")
    surveillance = PaperText(
        5, "Diffusion models for video surveillance", "Diffusion models watch cameras."
    )
    papers = [DIFFUSION, survey, surveillance, GRAPHS]

    kept = only(relevance_only(keywords=["diffusion models"]), papers)
    excluded = only(
        relevance_only(keywords=["diffusion models"], excluded_keywords=["survey"]), papers
    )

    assert survey.key in keys(kept)
    assert survey.key not in keys(excluded)
    assert {DIFFUSION.key, surveillance.key} <= set(keys(excluded))


def test_an_excluded_phrase_needs_its_words_together_not_just_present() -> None:
    papers = [DIFFUSION, APART, GRAPHS]

    excluded = only(
        relevance_only(keywords=["diffusion"], excluded_keywords=["Diffusion Model"]), papers
    )

    # DIFFUSION says "diffusion models" (plural folded, any case); APART has both words, apart.
    assert keys(excluded) == [APART.key]


def graph_papers() -> tuple[PaperText, PaperText, PaperText]:
    molecules = PaperText(
        10,
        "Predicting the toxicity of drug molecules",
        "We predict the toxicity of drug molecules from their atoms and chemical bonds.",
    )
    drugs = PaperText(
        11,
        "Message passing graph neural networks for drug molecules",
        "We predict drug toxicity of molecules with graph neural networks over atoms and "
        "chemical bonds. Our graph neural networks pass messages along bonds.",
    )
    traffic = PaperText(
        12,
        "Traffic forecasting on city roads",
        "We forecast traffic speed from road sensors across a city with graph neural networks.",
    )
    return molecules, drugs, traffic


def test_disliked_papers_pull_similar_papers_down_for_that_subscriber_only() -> None:
    molecules, drugs, traffic = graph_papers()
    papers = [drugs, traffic]
    model = fit_model([molecules, *papers])
    plain = relevance_only(keywords=["graph neural networks"])
    picky = relevance_only(keywords=["graph neural networks"], disliked=[molecules])

    alone = rank_chunk(model, papers, [plain], diversity=0)[0]
    together = rank_chunk(model, papers, [plain, picky], diversity=0)

    assert keys(alone) == [drugs.key, traffic.key]
    assert together[0] == alone
    relevance = {p.key: p.relevance for p in together[1]}
    # The paper like the disliked one loses most of its relevance, the other little.
    assert relevance[drugs.key] < 0.6 * alone[0].relevance
    assert relevance[traffic.key] > 0.8 * alone[1].relevance


def test_liked_papers_pull_similar_papers_up() -> None:
    molecules, drugs, traffic = graph_papers()
    roads = PaperText(13, "Forecasting road traffic", "Sensors on city roads record traffic speed.")
    papers = [drugs, traffic]
    model = fit_model([molecules, roads, *papers])

    plain = rank_chunk(model, papers, [relevance_only(keywords=["graph neural networks"])])[0]
    liking = relevance_only(keywords=["graph neural networks"], liked=[roads])
    with_like = rank_chunk(model, papers, [liking])[0]

    assert keys(plain)[0] == drugs.key
    assert keys(with_like)[0] == traffic.key


def test_the_floor_leaves_slots_empty_rather_than_fill_them_with_unrelated_papers() -> None:
    unrelated = [
        PaperText(20, "Speech recognition for low-resource languages", "Acoustic features."),
        PaperText(21, "Protein folding at scale", "Predicting how proteins fold."),
        PaperText(22, "Robot grasping from demonstrations", "Robots learn to grasp."),
    ]
    papers = [DIFFUSION, APART, *unrelated]
    interests = relevance_only(keywords=["diffusion models"], size=5)

    floored = only(interests, papers)
    unfloored = only(interests, papers, floor=-1.0)
    above_all = only(interests, papers, floor=0.99)

    # APART has both words, apart ("diffusion in porous media ... models"): no match either.
    assert keys(floored) == [DIFFUSION.key]
    # Without a floor a paper nothing in the profile explains is still no match.
    assert keys(unfloored) == [DIFFUSION.key]
    assert above_all == []


def near_duplicates() -> list[PaperText]:
    abstract = (
        "We distill diffusion models into one-step generators for fast image generation "
        "with a distribution matching loss."
    )
    copies = [
        PaperText(30 + n, f"One-step diffusion models by distribution matching {tag}", abstract)
        for n, tag in enumerate(["", "(v2)", "revisited"])
    ]
    different = PaperText(
        40,
        "Diffusion models for protein design",
        "Diffusion models generate protein backbones that fold into new structures.",
    )
    return [*copies, different]


def test_diversity_keeps_a_digest_from_being_variants_of_one_paper() -> None:
    papers = near_duplicates()
    interests = relevance_only(keywords=["diffusion models", "image generation"], size=2)

    diverse = only(interests, papers)
    by_score = only(interests, papers, diversity=0)

    assert len({k for k in keys(diverse) if k < 40}) == 1
    assert 40 in keys(diverse)
    assert all(k < 40 for k in keys(by_score))


def test_it_never_picks_a_seen_paper_again() -> None:
    papers = near_duplicates()
    interests = relevance_only(keywords=["diffusion models"], size=4)
    everything = only(interests, papers)
    seen = frozenset(keys(everything)[:2])

    again = only(relevance_only(keywords=["diffusion models"], size=4, seen=seen), papers)

    assert len(everything) == 4
    assert not seen & set(keys(again))
    assert len(again) == 2


def test_trending_weight_moves_a_highly_voted_paper_up() -> None:
    exact = PaperText(
        50,
        "Diffusion models for image generation",
        "Diffusion models generate images. We study diffusion models.",
        trending=0.01,
    )
    voted = PaperText(
        51,
        "Scaling image generation",
        "A large generator of images, with a diffusion models baseline.",
        upvotes=400,
        trending=3.0,
    )
    quiet = PaperText(52, "Protein structure", "Proteins fold.", trending=0.02)
    papers = [exact, voted, quiet]

    by_relevance = only(Interests(keywords=["diffusion models"], trending_weight=0.0), papers)
    by_trend = only(Interests(keywords=["diffusion models"], trending_weight=0.8), papers)

    assert keys(by_relevance)[0] == exact.key
    assert keys(by_trend)[0] == voted.key


def test_reasons_name_the_keyword_the_topic_and_the_liked_paper_as_data() -> None:
    voted = PaperText(
        60,
        "Scaling diffusion models",
        "Diffusion models generate images from noise.",
        upvotes=212,
        day_gain=40,
        trending=1.0,
    )
    detection = PaperText(
        61,
        "Real-time object detection",
        "Object detection and semantic segmentation of images with vision transformers.",
    )
    papers = [voted, detection, *graph_papers()]
    vision = (
        "Computer vision",
        "Image classification, object detection, semantic segmentation and depth estimation.",
    )
    molecules, drugs, _ = graph_papers()

    by_keyword = only(Interests(keywords=["diffusion models"]), papers)[0]
    by_topic = only(Interests(topics=[vision]), papers)[0]
    by_like = only(Interests(liked=[molecules]), papers)[0]

    assert by_keyword.reason == Reason(
        Signal.KEYWORD, ("diffusion models",), "matches your keyword 'diffusion models'"
    )
    assert by_keyword.section == Section.MATCH
    assert (by_topic.key, by_topic.reason) == (
        detection.key,
        Reason(Signal.TOPIC, ("Computer vision",), "in your topic 'Computer vision'"),
    )
    assert by_like.key == drugs.key
    assert by_like.reason == Reason(
        Signal.LIKED, (molecules.title,), f"close to '{molecules.title}', a paper you liked"
    )


def test_a_reason_survives_a_round_trip_through_json() -> None:
    reason = Reason(Signal.KEYWORD, ("a", "b"), "matches your keywords 'a' and 'b'", True)

    assert Reason.from_json(json.loads(json.dumps(reason.as_json()))) == reason


def test_reasons_name_the_first_two_matching_keywords_in_the_subscribers_order() -> None:
    molecules, drugs, traffic = graph_papers()
    papers = [molecules, drugs, traffic]
    interests = Interests(
        keywords=["robots", "drug molecules", "chemical bonds", "graph neural networks"],
        trending_weight=0.0,
    )

    picks = {p.key: p.reason for p in only(interests, papers)}

    assert picks[drugs.key].text == "matches your keywords 'drug molecules' and 'chemical bonds'"
    assert picks[drugs.key].matched == ("drug molecules", "chemical bonds")
    assert picks[traffic.key].text == "matches your keyword 'graph neural networks'"


def test_a_pick_that_trending_led_to_says_so() -> None:
    quiet = PaperText(70, "Graph neural networks for molecules", "Graph neural networks.")
    viral = PaperText(
        71, "Graph neural networks at scale", "Graph networks.", upvotes=1, trending=50.0
    )

    picks = only(Interests(keywords=["graph neural networks"], trending_weight=0.9), [quiet, viral])

    assert picks[0].key == viral.key
    assert picks[0].reason.signal == Signal.KEYWORD
    assert picks[0].reason.trending
    assert not picks[1].reason.trending


def test_a_description_reason_quotes_the_readers_own_words_the_paper_contains() -> None:
    tiny = PaperText(
        80,
        "Training networks on microcontrollers",
        "On-device training of neural networks within 256KB of memory on microcontrollers.",
    )
    papers = [tiny, *graph_papers(), DIFFUSION]
    about = "I work on on-device training for microcontrollers, and sometimes on robots."

    pick = only(Interests(about=about), papers)[0]

    assert pick.key == tiny.key
    assert pick.reason.signal == Signal.DESCRIPTION
    assert pick.reason.matched == ("on-device training", "microcontrollers")
    assert pick.reason.text == "matches your description: on-device training, microcontrollers"


def test_a_description_reason_names_the_readers_rarer_words_first() -> None:
    # "learning" is in most papers of the catalogue, "manipulation" in one: the reason says
    # first what sets the paper apart, whatever the order the reader wrote the words in.
    robot = PaperText(
        90, "Robot manipulation", "Learning robot manipulation from learning signals."
    )
    common = [
        PaperText(91 + n, f"Learning {topic}", f"Learning {topic} with deep learning.")
        for n, topic in enumerate(("graphs", "images", "text", "audio", "proteins"))
    ]
    about = "Learning for the manipulation of objects by hand."

    pick = only(Interests(about=about, trending_weight=0.0), [robot, *common, DIFFUSION])[0]

    assert pick.key == robot.key
    assert pick.reason.matched == ("manipulation", "Learning")


def by(key: int, title: str, *authors: str, abstract: str = "A study.") -> PaperText:
    return PaperText(key, title, abstract, authors=list(authors))


def test_a_followed_authors_paper_comes_first_in_its_own_section_whatever_its_relevance() -> None:
    own = by(90, "Protein folding at scale", "Ana Gómez", "Song Han")
    papers = [own, *graph_papers()]
    interests = relevance_only(keywords=["graph neural networks"], authors=["song han"], size=2)

    picks = only(interests, papers)

    assert [(p.key, p.section) for p in picks[:1]] == [(own.key, Section.AUTHORS)]
    assert picks[0].reason == Reason(Signal.AUTHOR, ("Song Han",), "by Song Han, whom you follow")
    assert [p.section for p in picks[1:]] == [Section.MATCH, Section.MATCH]
    assert own.key not in keys(picks[1:])


def test_a_followed_authors_paper_already_seen_or_excluded_is_not_picked_again() -> None:
    own = by(91, "Protein folding at scale", "Song Han")
    papers = [own, *graph_papers()]

    seen = only(relevance_only(authors=["Song Han"], seen=frozenset({own.key})), papers)
    excluded = only(relevance_only(authors=["Song Han"], excluded_keywords=["protein"]), papers)

    assert own.key not in keys(seen) and own.key not in keys(excluded)


@pytest.mark.parametrize(
    "written", ["Song Han", "song han", "S. Han", "Sóng Hán", "Han, Song", "Han, S.", "SONG HAN"]
)
def test_followed_authors_are_found_whatever_the_case_accents_or_initials(written: str) -> None:
    assert same_person(name_of("Song Han"), name_of(written))


@pytest.mark.parametrize("written", ["Sheng Han", "Song Hang", "Han Song", ""])
def test_another_person_is_not_a_followed_author(written: str) -> None:
    assert not same_person(name_of("Song Han"), name_of(written))


def test_similarities_kept_between_chunks_rank_as_a_fresh_model_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    molecules, drugs, traffic = graph_papers()
    papers = [molecules, drugs, traffic, DIFFUSION, APART, GRAPHS]
    edited = PaperText(molecules.key, "Diffusion models for images", "Diffusion models.")
    liking = [Interests(liked=[molecules], keywords=["graph neural networks"])]
    liking_edited = [Interests(liked=[edited], keywords=["graph neural networks"])]
    model = fit_model(papers)
    rank_chunk(model, papers, liking)  # keeps the rows of the liked paper and the keyword

    # The same key with another text is another component, not the kept row.
    assert rank_chunk(model, papers, liking_edited) == rank_chunk(
        fit_model(papers), papers, liking_edited
    )
    # A cache too small for one chunk is emptied and refilled, never served stale.
    monkeypatch.setattr("papers.ranking.vectors.SIMILARITY_CACHE_BYTES", 1)
    assert rank_chunk(model, papers, liking) == rank_chunk(fit_model(papers), papers, liking)


def test_a_chunk_of_300_subscribers_is_ranked_at_once_as_each_would_be_alone() -> None:
    chooser = random.Random(7)
    words = [f"{stem}{n}" for stem in ("graph", "diffusion", "robot", "speech") for n in range(8)]
    papers = [
        PaperText(
            n,
            " ".join(chooser.choices(words, k=4)),
            " ".join(chooser.choices(words, k=12)),
            upvotes=chooser.randint(0, 300),
            trending=chooser.random(),
        )
        for n in range(1, 201)
    ]
    model = fit_model(papers)
    chunk = [
        Interests(
            keywords=chooser.sample(words, 2),
            liked=chooser.sample(papers, chooser.choice([0, 1])),
            seen=frozenset(chooser.sample(range(1, 201), 20)),
            trending_weight=chooser.choice([0.0, 0.2, 0.9]),
            size=chooser.choice([3, 10]),
        )
        for _ in range(300)
    ]

    digests = rank_chunk(model, papers, chunk)
    profiles = profile_matrix(model, chunk)

    assert profiles.shape == (300, model.n_features)
    norms = np.sqrt(np.asarray(profiles.multiply(profiles).sum(axis=1)).ravel())
    assert np.allclose(norms, 1.0, atol=1e-5)
    assert len(digests) == 300
    for interests, picks in zip(chunk, digests, strict=True):
        assert len(picks) <= interests.size
        assert not interests.seen & set(keys(picks))
    for n in chooser.sample(range(300), 12):
        alone = rank_chunk(model, papers, [chunk[n]])[0]
        assert keys(digests[n]) == keys(alone)
        assert [p.reason for p in digests[n]] == [p.reason for p in alone]
        assert [p.relevance for p in digests[n]] == pytest.approx([p.relevance for p in alone])


def test_a_pickled_model_ranks_the_same() -> None:
    papers = [DIFFUSION, APART, GRAPHS]
    model = fit_model(papers)
    interests = [Interests(keywords=["diffusion models"]), Interests(keywords=["molecules"])]

    copy = pickle.loads(pickle.dumps(model))

    assert rank_chunk(copy, papers, interests) == rank_chunk(model, papers, interests)


def test_papers_the_model_was_not_fitted_on_are_ranked_too() -> None:
    model = fit_model([APART, GRAPHS])
    newcomer = PaperText(99, "Diffusion models for audio", "Diffusion models generate audio.")

    picks = rank_chunk(model, [APART, newcomer], [Interests(keywords=["diffusion models"])])

    assert keys(picks[0])[0] == newcomer.key


def test_nothing_to_rank_gives_empty_digests() -> None:
    model = fit_model([])

    assert rank_chunk(model, [], [Interests(keywords=["anything"])]) == [[]]
    assert rank_chunk(model, [DIFFUSION], []) == []


def test_a_reader_who_rated_enough_papers_gets_a_model_of_their_own() -> None:
    def paper(key: int, title: str) -> PaperText:
        return PaperText(key, title, f"{title}. We study {title.lower()} at scale.")

    liked = [
        paper(1, "Diffusion models for image editing"),
        paper(2, "Diffusion models for image super-resolution"),
        paper(3, "Latent diffusion models for image synthesis"),
    ]
    disliked = [paper(4, "Diffusion models for video generation")]
    image, video = paper(5, "Diffusion models for image inpainting"), paper(6, "Video diffusion")
    papers = [*liked, *disliked, image, video]
    few = relevance_only(liked=liked[:1], disliked=disliked)  # too few ratings for a model
    many = relevance_only(liked=liked, disliked=disliked)

    fixed, learnt = rank_chunk(fit_model(papers), [image, video], [few, many])

    assert keys(learnt)[0] == image.key
    assert learnt[0].reason.signal == Signal.FEEDBACK
    assert "learnt from your feedback" in learnt[0].reason.text
    assert all(p.reason.signal == Signal.LIKED for p in fixed)
