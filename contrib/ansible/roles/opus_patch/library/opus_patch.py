#!/usr/bin/python3
"""Ansible module: live-patch every process on the host that maps a patch's
object, with opus. Check mode lists the processes that would change."""

import json

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: opus_patch
short_description: Apply or revert an opus live patch on every process that maps its object
options:
  path: {description: The .opatch file on the host., type: path, required: true}
  state: {description: applied or reverted., type: str, default: applied}
  install: {description: Also keep it in (or take it out of) the store for opus daemon., type: bool, default: false}
  store: {description: The patch store., type: path, default: /var/lib/opus}
  opus: {description: The opus binary., type: path, default: opus}
  timeout: {description: Seconds to wait per process while a replaced function is running., type: float, default: 5}
"""


def opus(module, *args, check_rc=True):
    cmd = [module.params["opus"]] + [str(a) for a in args]
    rc, out, err = module.run_command(cmd)
    if check_rc and rc != 0:
        module.fail_json(msg="%s failed: %s" % (" ".join(cmd), (err or out).strip()),
                         rc=rc, stdout=out, stderr=err)
    return rc, out, err


def as_json(module, out):
    try:
        return json.loads(out)
    except ValueError:
        module.fail_json(msg="opus printed no JSON: %s" % out)


def procs(report, state):
    return [{"pid": p["pid"], "comm": p["comm"]}
            for p in report.get("processes", []) if p["state"] == state]


def installed(module, pid):
    _, out, _ = opus(module, "list", "--installed", "--json", "--store", module.params["store"])
    return any(p["id"] == pid for p in as_json(module, out)["patches"])


def apply(module, patch_id, result):
    p = module.params
    if p["install"] and not installed(module, patch_id):
        result["changed"] = True
        result["installed"] = True
        if not module.check_mode:
            opus(module, "install", "--store", p["store"], p["path"])
    if module.check_mode:
        _, out, _ = opus(module, "apply", "--all", "--dry-run", "--json", p["path"])
        report = as_json(module, out)
        result["would_patch"] = procs(report, "would patch")
        result["already_patched"] = procs(report, "already patched")
        result["changed"] |= bool(result["would_patch"])
        return
    rc, out, err = opus(module, "apply", "--all", "--json", "--timeout", p["timeout"], p["path"],
                        check_rc=False)
    report = as_json(module, out) if out.strip() else {}
    result["patched"] = procs(report, "patched")
    result["already_patched"] = procs(report, "already patched")
    result["failed_processes"] = [{"pid": x["pid"], "comm": x["comm"], "reason": x.get("reason", "")}
                        for x in report.get("processes", []) if x["state"] == "failed"]
    result["changed"] |= bool(result["patched"])
    if rc != 0:
        module.fail_json(msg="opus apply --all: %s" % (err.strip() or "some processes failed"),
                         **result)


def revert(module, patch_id, result):
    p = module.params
    if p["install"] and installed(module, patch_id):
        result["changed"] = True
        result["uninstalled"] = True
        if not module.check_mode:
            opus(module, "uninstall", "--store", p["store"], patch_id)
    _, out, _ = opus(module, "list", "--json")
    having = [{"pid": x["pid"], "comm": x["comm"]} for x in as_json(module, out)["processes"]
              if any(e["id"] == patch_id for e in x["patches"])]
    if module.check_mode or not having:
        result["would_revert" if module.check_mode else "reverted"] = having
        result["changed"] |= bool(having)
        return
    rc, out, err = opus(module, "revert", "--all", "--json", "--timeout", p["timeout"], patch_id,
                        check_rc=False)
    report = as_json(module, out) if out.strip() else {}
    result["reverted"] = procs(report, "reverted")
    result["changed"] |= bool(result["reverted"])
    if rc != 0:
        module.fail_json(msg="opus revert --all: %s" % (err.strip() or "some processes failed"),
                         **result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            state=dict(type="str", default="applied", choices=["applied", "reverted"]),
            install=dict(type="bool", default=False),
            store=dict(type="path", default="/var/lib/opus"),
            opus=dict(type="path", default="opus"),
            timeout=dict(type="float", default=5),
        ),
        supports_check_mode=True,
    )
    _, out, _ = opus(module, "inspect", "--json", module.params["path"])
    patch_id = as_json(module, out)["id"]
    result = {"changed": False, "patch": patch_id}
    if module.params["state"] == "applied":
        apply(module, patch_id, result)
    else:
        revert(module, patch_id, result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
