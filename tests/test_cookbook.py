"""The cookbook's recipes do what the text says (tests/test_doc_policies.py checks that each
passes `aifw policy check`; these run the term-list recipe as written and read what the others
compile to)."""
from __future__ import annotations

from proxy.policy.compile import compile_policy
from proxy.services import Services
from tests.docs_examples import examples, run, sandbox
from tests.pii.helpers import chat_exchange, set_answer

ENV = {"OPENAI_API_KEY": "sk-x", "AZURE_OPENAI_API_KEY": "az-x", "AIFW_KEYS_FILE": "keys.yaml"}


def recipe(name: str, lang: str = "yaml"):
    blocks = [e for e in examples((lang,)) if e.file == "docs/cookbook.md" and name in e.text]
    assert len(blocks) == 1, name
    return blocks[0]


async def test_term_list_recipe_masks_code_names_and_customer_ids(tmp_path):
    cwd, env = sandbox(tmp_path)
    out = run(recipe("policies/terms/codenames.txt", "sh"), cwd, env)
    assert out.returncode == 0, out.stderr
    path = cwd / "policies" / "confidential.yaml"
    path.write_text(recipe("name: confidential-names").text)
    policy = compile_policy(str(path), Services(), {})
    (pii,) = [g for g in policy.base.guards if g.name == "pii"]
    ex = chat_exchange(("user", "Status of project nightjar for Globex Corporation, ticket CUST-004711, "
                                "and contract DE-2024-0042?"))
    await pii.on_request(ex)
    assert ex.body["messages"][0]["content"] == (
        "Status of <CODENAME_1> for <CUSTOMER_1>, ticket <CUSTOMER_ID_1>, and contract <CONTRACT_NO_1>?")
    # the answer gets the real names back
    set_answer(ex, "<CODENAME_1> ships in May for <CUSTOMER_1>.")
    await pii.on_response(ex)
    assert ex.response_body["choices"][0]["message"]["content"] == "project nightjar ships in May for Globex Corporation."


def test_azure_recipe_routes_models_to_deployments(tmp_path):
    path = tmp_path / "azure.yaml"
    path.write_text(recipe("name: azure").text)
    policy = compile_policy(str(path), None, ENV)
    route = policy.route("gpt-4o", "openai")
    assert [(t.upstream.provider, t.model) for t in route.targets] == [("azure", "prod-gpt4o")]
    assert policy.upstreams["azure"].api_version == "2024-10-21"


def test_team_and_trusted_backend_recipes_compile_their_scopes(tmp_path):
    for name, scopes in (("name: teams", ["research", "interns"]),
                         ("name: support-backend", ["vip-customers"])):
        path = tmp_path / "p.yaml"
        path.write_text(recipe(name).text)
        policy = compile_policy(str(path), None, {**ENV, "AIFW_REDIS_URL": "redis://127.0.0.1:1/0"})
        assert [s.name for s in policy.scopes] == scopes
        assert policy.identity.mode == "virtualKeys"
