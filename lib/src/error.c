/* Error and role names shared by every part of the library. */
#include "libraft/raft.h"

const char *raft_strerror(int rc)
{
	switch (rc) {
	case RAFT_OK:
		return "success";
	case RAFT_ENOMEM:
		return "out of memory";
	case RAFT_EINVAL:
		return "invalid argument";
	case RAFT_ENOTLEADER:
		return "not the leader";
	case RAFT_EBUSY:
		return "too many requests in flight";
	case RAFT_ESHUTDOWN:
		return "shutting down or stopped after a failure";
	case RAFT_EIO:
		return "I/O error";
	case RAFT_ECORRUPT:
		return "stored data is corrupt";
	case RAFT_ENOSPC:
		return "no space left on device";
	case RAFT_ETOOBIG:
		return "too large";
	case RAFT_ENOTFOUND:
		return "not found";
	case RAFT_ETIMEDOUT:
		return "timed out";
	case RAFT_EPROTO:
		return "protocol error";
	case RAFT_EMISMATCH:
		return "configuration does not match stored state";
	case RAFT_ELEADERLOST:
		return "leadership lost; outcome unknown";
	case RAFT_ENOTSUP:
		return "not supported";
	case RAFT_EUNAVAIL:
		return "cluster unavailable";
	}
	return "unknown error";
}

const char *raft_role_name(enum raft_role role)
{
	switch (role) {
	case RAFT_FOLLOWER:
		return "follower";
	case RAFT_PRECANDIDATE:
		return "precandidate";
	case RAFT_CANDIDATE:
		return "candidate";
	case RAFT_LEADER:
		return "leader";
	}
	return "unknown";
}
