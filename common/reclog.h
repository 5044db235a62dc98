/*
 * reclog.h -- append-only, checksummed, segmented record logs.
 *
 * Used by the accountant's event log and by the ingress usage spool; both
 * write encoded pf_msg records, so `planktonfly replay` reads either.
 *
 * On disk: a directory of segments named "<prefix>-<seq>.log" (seq: 16
 * lowercase hex digits, increasing).  A segment is a sequence of records:
 *
 *   offset 0   u32 magic "PFR1" (0x31524650 little-endian)
 *          4   u32 length of the payload (<= PF_RECLOG_RECORD_MAX)
 *          8   u64 timestamp, unix ms, when the record was appended
 *         16   u32 CRC32C over bytes 4..16 and the payload
 *         20   payload
 *
 * Integers are little-endian.  There is no padding and no segment header.
 *
 * Writing: pf_reclog_append copies a record into the writer's buffer;
 * pf_reclog_sync writes the buffer and calls fdatasync once, however many
 * records were appended (group commit).  A record is durable only after a
 * sync that follows its append returned PF_OK.  When a record would push
 * the current segment past seg_max bytes, the segment is synced and closed
 * and the next one is created (and the directory synced).  A segment other
 * than the newest is therefore always complete.
 *
 * Reading: pf_reclog_read_file walks one segment.  A bad record (wrong
 * magic, impossible length, short read, checksum mismatch) followed by no
 * valid record is a torn tail -- the normal result of a crash during an
 * append: it is reported, not removed (the caller decides; usually it
 * warns and calls pf_reclog_truncate).  A bad record followed by a valid one
 * is corruption in the middle: PF_EPROTO with the offset.
 *
 * Deleting acknowledged records (the ingress spool): records are never
 * removed one by one.  Track, per segment seq (pf_reclog_pos.seq from
 * pf_reclog_append), how many records are still unacknowledged; when a
 * segment other than the current one (pf_reclog_current_seq) reaches zero,
 * call pf_reclog_remove.  pf_reclog_rotate closes the current segment
 * early (e.g. when the spool is idle) so that it, too, can be removed.
 * After a restart, read every remaining segment (pf_reclog_list +
 * pf_reclog_read_file) and resend every record; the receiver deduplicates
 * by event id.  pf_reclog_open always starts a new segment, so old
 * segments never change again once a writer has reopened the directory.
 *
 * A pf_reclog writer is not thread-safe: one owner thread.  Two writers on
 * one directory are refused (flock on "<dir>/<prefix>.lock").
 */
#ifndef PF_COMMON_RECLOG_H
#define PF_COMMON_RECLOG_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define PF_RECLOG_MAGIC 0x31524650u /* "PFR1" */
#define PF_RECLOG_HEADER 20u

typedef struct pf_reclog pf_reclog;

/* Where a record starts: segment sequence number and byte offset. */
typedef struct pf_reclog_pos {
	uint64_t seq;
	uint64_t off;
} pf_reclog_pos;

/* Counters of a writer (for tests and metrics). */
typedef struct pf_reclog_stats {
	uint64_t appends;         /* records appended */
	uint64_t syncs;           /* fdatasync calls made */
	uint64_t rotations;       /* segments closed because they were full */
	uint64_t rotate_failures; /* next segment not opened: stayed */
	uint64_t repairs;         /* pf_reclog_repair calls that worked */
} pf_reclog_stats;

/* What pf_reclog_read_file found. */
typedef struct pf_reclog_scan {
	uint64_t records;    /* valid records passed to the callback */
	uint64_t valid_end;  /* offset just after the last valid record */
	uint64_t file_size;  /* > valid_end: a torn tail starts at valid_end */
	uint64_t bad_offset; /* on PF_EPROTO: where the bad record starts */
} pf_reclog_scan;

/*
 * pf_reclog_record_cb receives one valid record: its position, append
 * timestamp (unix ms) and payload (valid only during the call).  Returning
 * anything but PF_OK stops the walk, which returns that error.
 */
typedef pf_err (*pf_reclog_record_cb)(void *arg, const pf_reclog_pos *pos,
    int64_t ts_ms, const uint8_t *rec, size_t len);

/* pf_crc32c returns the CRC32C (Castagnoli) of buf continuing from crc
 * (start with 0). */
uint32_t pf_crc32c(uint32_t crc, const void *buf, size_t len);

/*
 * pf_reclog_open opens (creating when missing, mode 0700) directory dir for
 * appending records to segments named prefix-<seq>.log, at most seg_max
 * bytes each (0 = PF_RECLOG_SEGMENT_DEFAULT; a single larger record still
 * gets a segment of its own).  A new segment numbered after the newest
 * existing one is created; existing segments are not read or changed.
 * *ret_log (free with pf_reclog_close) is written only on success.
 * Errors: PF_EINVAL (bad prefix: empty, or not [A-Za-z0-9_.]), PF_EEXIST
 * (another writer holds the directory), PF_EIO, PF_ENOMEM.
 */
PF_NODISCARD pf_err pf_reclog_open(
    const char *dir, const char *prefix, uint64_t seg_max, pf_reclog **ret_log);

/*
 * pf_reclog_append copies rec[0..len) into the writer, stamped with ts_ms,
 * rotating first if the segment is full.  Not durable until
 * pf_reclog_sync.  *ret_pos (may be NULL) receives the record's position.
 * When the next segment cannot be opened (e.g. no descriptor free) the
 * record goes into the current one, and the next append tries again;
 * only past PF_RECLOG_FILE_MAX / 2 bytes is that an error (PF_EIO, the
 * writer still usable).  Errors: PF_ETOOBIG (len > PF_RECLOG_RECORD_MAX),
 * PF_EIO (a write failed: the writer is then broken, see
 * pf_reclog_repair), PF_ENOMEM.
 */
PF_NODISCARD pf_err pf_reclog_append(pf_reclog *log, const void *rec,
    size_t len, int64_t ts_ms, pf_reclog_pos *ret_pos);

/*
 * pf_reclog_sync writes every appended record and makes it durable with
 * one fdatasync.  Nothing appended since the last sync: no system call.
 * Errors: PF_EIO (the writer is then unusable: after a failed fsync the
 * kernel may have dropped the data, so the caller must reopen).
 */
PF_NODISCARD pf_err pf_reclog_sync(pf_reclog *log);

/*
 * pf_reclog_flush writes every appended record to the file (write(2), no
 * fdatasync): from then on a crash of the process no longer loses them,
 * a crash of the machine still may until pf_reclog_sync.  Errors: PF_EIO
 * (the writer is then unusable).
 */
PF_NODISCARD pf_err pf_reclog_flush(pf_reclog *log);

/*
 * pf_reclog_repair makes a broken writer (a write or an fdatasync failed)
 * usable again: the records not yet written are dropped, the segment is
 * left as it is (its records up to the failure stay readable; a reader
 * sees a torn tail) and a new segment is opened.  A writer that is not
 * broken: no-op.  Errors: PF_EIO (the new segment could not be opened;
 * still broken, try again later).
 */
PF_NODISCARD pf_err pf_reclog_repair(pf_reclog *log);

/*
 * pf_reclog_fileno returns the file descriptor of the current segment
 * (-1 when the writer is broken), for a caller that syncs flushed records
 * from another thread: dup(2) it there and fdatasync the copy.  Records
 * of older segments were synced when their segment was closed.  The
 * descriptor stays the writer's: never write to or close it.
 */
int pf_reclog_fileno(const pf_reclog *log);

/*
 * pf_reclog_rotate syncs and closes the current segment and starts the
 * next, even if it is not full; a no-op when the current segment is
 * empty.  Errors: PF_EIO.
 */
PF_NODISCARD pf_err pf_reclog_rotate(pf_reclog *log);

/* pf_reclog_current_seq returns the sequence number of the segment being
 * written. */
uint64_t pf_reclog_current_seq(const pf_reclog *log);

/* pf_reclog_end returns the position the next record will get, in the
 * current segment (records buffered but not yet synced included). */
pf_reclog_pos pf_reclog_end(const pf_reclog *log);

/* pf_reclog_get_stats copies the writer's counters. */
void pf_reclog_get_stats(const pf_reclog *log, pf_reclog_stats *ret);

/*
 * pf_reclog_remove deletes segment seq of the directory.  Errors:
 * PF_EINVAL (seq is the current segment), PF_ENOTFOUND, PF_EIO.
 */
PF_NODISCARD pf_err pf_reclog_remove(pf_reclog *log, uint64_t seq);

/* pf_reclog_close syncs (best effort) and closes; NULL is a no-op. */
void pf_reclog_close(pf_reclog *log);

/*
 * pf_reclog_list finds the segments of prefix in dir, in increasing seq
 * order.  *ret_seqs (free()) holds *ret_n entries; both written only on
 * success (an empty or missing directory gives 0 entries and NULL).
 * Errors: PF_EIO, PF_ENOMEM.
 */
PF_NODISCARD pf_err pf_reclog_list(
    const char *dir, const char *prefix, uint64_t **ret_seqs, size_t *ret_n);

/* pf_reclog_segment_path writes "<dir>/<prefix>-<seq>.log" into out
 * (outlen bytes).  Errors: PF_ETOOBIG. */
PF_NODISCARD pf_err pf_reclog_segment_path(const char *dir, const char *prefix,
    uint64_t seq, char *out, size_t outlen);

/*
 * pf_reclog_read_file walks the records of the segment file at path,
 * starting at byte offset from (which must be a record boundary), calling
 * cb for each valid record; pos.seq is seq as given.  *ret_scan (may be
 * NULL) is filled on PF_OK and on PF_EPROTO.  Returns PF_OK when every
 * record up to the end, or up to a torn tail, was valid (a torn tail shows
 * as scan.valid_end < scan.file_size); PF_EPROTO when a bad record is
 * followed by a valid one (scan.bad_offset says where); PF_EIO,
 * PF_ENOTFOUND (no such file); or the error cb returned.
 */
PF_NODISCARD pf_err pf_reclog_read_file(const char *path, uint64_t seq,
    uint64_t from, pf_reclog_record_cb cb, void *arg, pf_reclog_scan *ret_scan);

/*
 * pf_reclog_truncate cuts the file at path to len bytes and syncs it (the
 * repair of a torn tail).  Errors: PF_EIO, PF_ENOTFOUND.
 */
PF_NODISCARD pf_err pf_reclog_truncate(const char *path, uint64_t len);

/*
 * pf_reclog_parse_name reports whether name (a file name, no directory) is
 * a segment "<prefix>-<16 hex>.log" of any prefix; writes the prefix length
 * and seq on success.  Returns 1 for a segment name, else 0.
 */
int pf_reclog_parse_name(
    const char *name, size_t *ret_prefix_len, uint64_t *ret_seq);

#endif /* PF_COMMON_RECLOG_H */
