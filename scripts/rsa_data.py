"""Rule rsa_data: the 92 object images with people's similarity judgments
(Mur et al. 2013) and human/monkey IT RDMs (Kriegeskorte et al. 2008), from
the copy committed in resources/rsa92 (rsa.cache: ''), or from the folder
rsa.cache names (downloaded there from the pinned URL when missing), each
file checked against its pinned sha256, stored as one .npz. Where the files
come from (rsa.cache, rsa.download, rsa.base_url) does not change the
outputs (the checksums pin the bytes), so it is read from the config here,
not passed as params that would trigger reruns."""

from pathlib import Path

from iriflow.io import write_provenance
from iriflow.rsa import RSA92_FILES, fetch_verified, load_rsa92, resolve_cache, sha256_file
from iriflow.runtime import RuleContext

ctx = RuleContext(snakemake)
rsa = snakemake.config["rsa"]
base_url, download = rsa["base_url"], rsa["download"]
bundled = (Path(snakemake.scriptdir).parent / "resources" / "rsa92").resolve()  # without rules/..
cache = resolve_cache(rsa["cache"], bundled)
ctx.log.info("download cache: %s (download %s)", cache, "allowed" if download else "off")
paths, sources = {}, {}
for key, remote in RSA92_FILES.items():
    paths[key], how = fetch_verified(remote, cache, base_url, download)
    sources[remote.name] = {
        "sha256": sha256_file(paths[key]),
        "from": how,
        "path": str(paths[key]),
        "url": f"{base_url.rstrip('/')}/{remote.name}",
        "what": remote.what,
    }
    ctx.log.info("%s: sha256 ok (%s)", remote.name, how)
data = load_rsa92(paths["behaviour"], paths["kriegeskorte"])
ctx.log.info(
    "%d participants' RDMs, %d images %s, categories %s",
    len(data.behaviour),
    len(data.images),
    data.images.shape[1:],
    data.category_labels,
)
data.save(snakemake.output.data)
write_provenance(
    snakemake.output.provenance,
    {"download": download, "base_url": base_url},
    wall_time_s=ctx.elapsed,
    files=sources,
)
