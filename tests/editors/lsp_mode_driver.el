;;; lsp_mode_driver.el --- drives lsp-mode for tests/editors/test_emacs.py  -*- lexical-binding: t -*-

;; Runs in `emacs --batch': loads the README's lsp-mode snippet ($LSPILOT_TEST_SNIPPET),
;; opens $LSPILOT_TEST_FILE, starts lsp-mode, runs "lspilot: Refactor" on lines 4-6 and
;; writes what it saw as JSON to $LSPILOT_TEST_OUT.

(require 'json)

(defvar lspilot-test-result nil)

(defun lspilot-test-finish (ok &optional error-text)
  (setf (alist-get 'ok lspilot-test-result) (if ok t :json-false))
  (setf (alist-get 'error lspilot-test-result) error-text)
  (setf (alist-get 'warnings lspilot-test-result)
        (if (get-buffer "*Warnings*")
            (with-current-buffer "*Warnings*" (buffer-string))
          ""))
  (with-temp-file (getenv "LSPILOT_TEST_OUT")
    (insert (json-encode lspilot-test-result)))
  (kill-emacs 0))

(defun lspilot-test-wait (seconds predicate what)
  (let ((deadline (+ (float-time) seconds)))
    (while (not (funcall predicate))
      (when (> (float-time) deadline) (error "Timed out waiting for %s" what))
      (accept-process-output nil 0.05))))

(defun lspilot-test-run ()
  (require 'lsp-mode)
  (load (getenv "LSPILOT_TEST_SNIPPET") nil t)
  (setq lsp-session-file (expand-file-name "lsp-session" (getenv "HOME"))
        lsp-auto-guess-root t lsp-enable-file-watchers nil lsp-enable-snippet nil
        lsp-restart 'ignore lsp-keep-workspace-alive nil)
  (find-file (getenv "LSPILOT_TEST_FILE"))
  (let ((original (buffer-string)))
    (lsp)
    (lspilot-test-wait 30 (lambda ()
                            (seq-some (lambda (w) (eq (lsp--workspace-status w) 'initialized))
                                      (lsp-workspaces)))
                       "lsp-mode to start lspilot")
    (setf (alist-get 'servers lspilot-test-result)
          (mapcar (lambda (w) (symbol-name (lsp--client-server-id (lsp--workspace-client w))))
                  (lsp-workspaces)))
    (goto-char (point-min)) (forward-line 3) (set-mark (point)) (forward-line 3) (activate-mark)
    (let* ((actions (lsp-code-actions-at-point))
           (refactor (seq-find (lambda (a) (equal (lsp:code-action-title a) "lspilot: Refactor"))
                               actions)))
      (setf (alist-get 'offered lspilot-test-result) (mapcar #'lsp:code-action-title actions))
      (unless refactor (error "No lspilot: Refactor action"))
      (lsp-execute-code-action refactor)
      ;; lsp-mode runs the command asynchronously: the edit is what to wait for.
      (lspilot-test-wait 20 (lambda () (not (equal original (buffer-string)))) "the edit")
      (setf (alist-get 'buffer lspilot-test-result) (buffer-string)))))

(run-at-time 50 nil (lambda () (lspilot-test-finish nil "driver timed out (50 s)")))

(condition-case err
    (progn (lspilot-test-run) (lspilot-test-finish t))
  (error (lspilot-test-finish nil (error-message-string err))))

;;; lsp_mode_driver.el ends here
