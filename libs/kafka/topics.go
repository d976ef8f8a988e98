package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// EnsureTopics creates the topics that do not exist yet with the
// configured partitions and replication and max.message.bytes =
// c.MaxRecordBytes, and raises max.message.bytes on existing topics whose
// limit is lower (topics created by an older hl7bus, or by hand), so
// every topic can hold every record a stage may write. It never lowers a
// limit.
func EnsureTopics(ctx context.Context, cl *kgo.Client, c Config, topics ...string) error {
	c = c.WithDefaults()
	adm := kadm.NewClient(cl)
	limit := strconv.Itoa(c.MaxRecordBytes)
	res, err := adm.CreateTopics(ctx, c.Partitions, c.Replication, map[string]*string{maxMessageBytes: &limit}, topics...)
	if err != nil {
		return fmt.Errorf("creating topics: %w", err)
	}
	var existing []string
	var errList []error
	for _, r := range res.Sorted() {
		switch {
		case errors.Is(r.Err, kerr.TopicAlreadyExists):
			existing = append(existing, r.Topic)
		case r.Err != nil:
			errList = append(errList, fmt.Errorf("creating topic %s: %w", r.Topic, r.Err))
		}
	}
	if len(existing) > 0 {
		if err := raiseLimitsSoon(ctx, adm, c.MaxRecordBytes, existing); err != nil {
			errList = append(errList, err)
		}
	}
	return errors.Join(errList...)
}

// topicSettleTime bounds the wait for a topic another client has just
// created: a real cluster answers TOPIC_ALREADY_EXISTS at once, but may
// answer UNKNOWN_TOPIC_OR_PARTITION to a describe for a moment more, until
// the new topic's metadata has reached every broker (kfake never does).
const topicSettleTime = 15 * time.Second

// raiseLimitsSoon is raiseLimits, repeated until the cluster shows every
// topic at the limit: it may not yet know a topic it just said exists, and
// a real cluster applies an altered config asynchronously, so a record
// produced right after the alter could still be refused as too large.
func raiseLimitsSoon(ctx context.Context, adm *kadm.Client, limit int, topics []string) error {
	deadline := time.Now().Add(topicSettleTime)
	wait := 50 * time.Millisecond
	for {
		low, err := raiseLimits(ctx, adm, limit, topics)
		switch {
		case err == nil && len(low) == 0:
			return nil
		case err != nil && !errors.Is(err, kerr.UnknownTopicOrPartition):
			return err
		case time.Now().After(deadline):
			if err == nil {
				err = fmt.Errorf("%s of %v still below %d %v after raising it", maxMessageBytes, low, limit, topicSettleTime)
			}
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

// maxMessageBytes is the topic config that bounds a record batch (after
// compression) on the broker.
const maxMessageBytes = "max.message.bytes"

// raiseLimits sets max.message.bytes to limit on each topic whose value
// is lower, with an incremental alter (only that key changes), and returns
// the topics it found low (none: every topic is at the limit).
func raiseLimits(ctx context.Context, adm *kadm.Client, limit int, topics []string) ([]string, error) {
	rcs, err := adm.DescribeTopicConfigs(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("describing topic configs: %w", err)
	}
	var low []string
	for _, rc := range rcs {
		if rc.Err != nil {
			return nil, fmt.Errorf("describing topic %s: %w", rc.Name, rc.Err)
		}
		cur := -1
		for _, kv := range rc.Configs {
			if kv.Key == maxMessageBytes {
				cur, _ = strconv.Atoi(kv.MaybeValue())
			}
		}
		if cur < limit {
			low = append(low, rc.Name)
		}
	}
	if len(low) == 0 {
		return nil, nil
	}
	v := strconv.Itoa(limit)
	res, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: maxMessageBytes, Value: &v}}, low...)
	if err != nil {
		return low, fmt.Errorf("raising %s of %v to %d: %w", maxMessageBytes, low, limit, err)
	}
	var errs []error
	for _, r := range res {
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("raising %s of topic %s to %d: %w", maxMessageBytes, r.Name, limit, r.Err))
		}
	}
	return low, errors.Join(errs...)
}

// EnsureCompactedTopics creates the compacted topics of the design
// (control, replay) that do not exist yet: one partition each, because
// their readers need one order over all keys (the replay runner's lease is
// partition 0), cleanup.policy=compact so the latest record per key stays
// for as long as the cluster runs. Existing topics are left as they are.
func EnsureCompactedTopics(ctx context.Context, cl *kgo.Client, c Config, topics ...string) error {
	c = c.WithDefaults()
	adm := kadm.NewClient(cl)
	compact := "compact"
	limit := strconv.Itoa(c.MaxRecordBytes)
	res, err := adm.CreateTopics(ctx, 1, c.Replication, map[string]*string{"cleanup.policy": &compact, maxMessageBytes: &limit}, topics...)
	if err != nil {
		return fmt.Errorf("creating topics: %w", err)
	}
	var errList []error
	for _, r := range res.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			errList = append(errList, fmt.Errorf("creating compacted topic %s: %w", r.Topic, r.Err))
		}
	}
	return errors.Join(errList...)
}
