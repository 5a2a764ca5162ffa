package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	golog "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/gologshim"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

var log = golog.Logger("rendezvous-chat")

func init() {
	// go-libp2p logs through slog. Without this bridge its loggers would
	// ignore go-log's levels, GOLOG_LOG_LEVEL and -log-level. It must run
	// before libp2p logs anything, hence init.
	gologshim.SetDefaultHandler(golog.SlogHandler())
}

// logLevels is a parsed log level spec, in GOLOG_LOG_LEVEL's syntax:
// "LEVEL" or "LEVEL,subsystem=LEVEL,...", for example "warn,dht=debug".
type logLevels struct {
	all       string            // level for every subsystem, "" to keep it
	subsystem map[string]string // per-subsystem levels
}

func parseLogLevels(spec string) (logLevels, error) {
	levels := logLevels{subsystem: map[string]string{}}
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, level, named := strings.Cut(part, "=")
		if !named {
			level = name
		}
		if _, err := golog.Parse(level); err != nil {
			return levels, fmt.Errorf("unknown log level %q (use debug, info, warn, error)", level)
		}
		if named {
			levels.subsystem[name] = level
		} else {
			levels.all = level
		}
	}
	return levels, nil
}

// apply sets the levels. Unset levels keep what GOLOG_LOG_LEVEL set.
func (l logLevels) apply() {
	if l.all == "" && os.Getenv("GOLOG_LOG_LEVEL") == "" {
		// go-libp2p's dependency injection (fx, logger "p2p-config") logs a
		// failed start as several ERROR lines, which repeat the one-line
		// error that Main prints. Asking for any level shows them again.
		_ = golog.SetLogLevel("p2p-config", "fatal")
	}
	if l.all != "" {
		_ = golog.SetLogLevel("*", l.all)
	}
	for name, level := range l.subsystem {
		_ = golog.SetLogLevel(name, level)
	}
}

// logThrough sends log lines to w, the line editor, while the chat runs on
// a terminal that stderr shares: the editor puts them above the prompt,
// with the carriage returns that raw mode needs, instead of in the middle
// of the line being typed. The returned function sends them back to
// stderr and applies levels again, since go-log's setup resets them.
func logThrough(w io.Writer, levels logLevels) (restore func()) {
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	enc.EncodeLevel = zapcore.CapitalLevelEncoder
	// The core passes everything; each logger's own level decides.
	golog.SetPrimaryCore(zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.AddSync(w), zapcore.DebugLevel))
	return func() {
		golog.SetupLogging(golog.GetConfig())
		levels.apply()
	}
}
