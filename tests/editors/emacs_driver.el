;;; emacs_driver.el --- drives eglot for tests/editors/test_emacs.py  -*- lexical-binding: t -*-

;; Runs in `emacs --batch'.  Loads the README's eglot snippet ($LSPILOT_TEST_SNIPPET),
;; opens $LSPILOT_TEST_SPEC's file, connects eglot to lspilot, picks a code action on
;; the spec's lines through `eglot-code-actions' as a user would (the menu answered by
;; a redefined `completing-read', eglot's edit question by a redefined `y-or-n-p'), and
;; writes what it saw as JSON to $LSPILOT_TEST_OUT.  Spec keys: file, from_line,
;; to_line (1-based, the region ends at the start of to_line), action (a code action
;; title), confirm (the value of `eglot-confirm-server-initiated-edits'), answer (what
;; y-or-n-p says), request_timeout (`jsonrpc-default-request-timeout', as the README
;; suggests for slow models).

(require 'json)
(require 'cl-lib)

(defvar lspilot-test-result nil "An alist, written as JSON at the end.")

(defun lspilot-test-put (key value)
  (setf (alist-get key lspilot-test-result) value))

(defun lspilot-test-push (key value)
  (lspilot-test-put key (append (alist-get key lspilot-test-result) (list value))))

(defun lspilot-test-finish (ok &optional error-text)
  (lspilot-test-put 'ok (if ok t :json-false))
  (when error-text (lspilot-test-put 'error error-text))
  (lspilot-test-put 'messages
                    (with-current-buffer (get-buffer-create "*Messages*")
                      (buffer-substring-no-properties (point-min) (point-max))))
  (with-temp-file (getenv "LSPILOT_TEST_OUT")
    (insert (json-encode lspilot-test-result)))
  (kill-emacs 0))

(defun lspilot-test-wait (seconds predicate what)
  "Process output until PREDICATE holds, or fail after SECONDS."
  (let ((deadline (+ (float-time) seconds)))
    (while (not (funcall predicate))
      (when (> (float-time) deadline)
        (error "Timed out waiting for %s" what))
      (accept-process-output nil 0.05))))

(defun lspilot-test-run ()
  (let* ((spec (json-read-file (getenv "LSPILOT_TEST_SPEC")))
         (spec-get (lambda (key) (alist-get key spec))))
    (lspilot-test-put 'emacs emacs-version)
    (unless (require 'eglot nil t)
      (lspilot-test-put 'no_eglot t)
      (error "eglot is not available in Emacs %s" emacs-version))
    (lspilot-test-put 'eglot (or (ignore-errors
                                   (package-desc-version
                                    (cadr (assq 'eglot package-alist))))
                                 (and (boundp 'eglot-version) eglot-version)
                                 "built-in"))
    ;; The README's snippet, as a user would put it in their init file.
    (load (getenv "LSPILOT_TEST_SNIPPET") nil t)
    (when (funcall spec-get 'request_timeout)
      (setq jsonrpc-default-request-timeout (funcall spec-get 'request_timeout)))
    (setq eglot-confirm-server-initiated-edits
          (pcase (funcall spec-get 'confirm) ("nil" nil) ("t" t) (_ 'confirm)))
    (let ((answer (equal (funcall spec-get 'answer) "y")))
      (fset 'y-or-n-p (lambda (prompt)
                        (lspilot-test-push 'questions prompt)
                        answer)))
    (find-file (funcall spec-get 'file))
    (lspilot-test-put 'major_mode (symbol-name major-mode))
    (let ((original (buffer-string)))
      (lspilot-test-put 'original original)
      (call-interactively #'eglot)
      (lspilot-test-wait 30 (lambda ()
                              (let ((server (eglot-current-server)))
                                (and server (eglot--server-capable :codeActionProvider))))
                         "eglot to connect to lspilot")
      (lspilot-test-put 'server_name (plist-get (eglot--server-info (eglot-current-server)) :name))
      (let* ((beg (progn (goto-char (point-min))
                         (forward-line (1- (funcall spec-get 'from_line))) (point)))
             (end (progn (goto-char (point-min))
                         (forward-line (1- (funcall spec-get 'to_line))) (point)))
             (wanted (funcall spec-get 'action))
             (answer nil)
             (signalled nil))
        (set-mark beg)
        (goto-char end)
        (activate-mark)
        ;; eglot's action menu: record it, pick the wanted title.
        (fset 'completing-read
              (lambda (_prompt collection &rest _)
                (dolist (item collection) (lspilot-test-push 'offered (car item)))
                (or (car (assoc wanted collection))
                    (error "No code action %S among %S" wanted (mapcar #'car collection)))))
        ;; What the server answered to workspace/executeCommand.
        (advice-add 'eglot-execute-command :filter-return
                    (lambda (value) (setq answer value)))
        (condition-case err
            ;; A keyboard event, not a mouse one: eglot reads the menu with completing-read.
            (let ((last-nonmenu-event ?\r))
              (eglot-code-actions beg end nil t))
          (error (setq signalled (error-message-string err))))
        (lspilot-test-put 'signalled signalled)
        (lspilot-test-put 'answer answer)
        (lspilot-test-put 'buffer (buffer-substring-no-properties (point-min) (point-max)))
        (lspilot-test-put 'modified (if (buffer-modified-p) t :json-false))
        (lspilot-test-put 'changed (if (equal original (buffer-string)) :json-false t))
        ;; Undo takes the whole edit back in one step.
        (when (buffer-modified-p)
          (deactivate-mark)
          (undo-boundary)
          (setq last-command nil)
          (undo)
          (lspilot-test-put 'after_undo (buffer-substring-no-properties (point-min) (point-max))))
        (lspilot-test-put 'events
                          (with-current-buffer (jsonrpc-events-buffer (eglot-current-server))
                            (buffer-substring-no-properties (point-min) (point-max))))
        (let ((server (eglot-current-server)))
          (eglot-shutdown server)
          (lspilot-test-put 'server_exited
                            (if (process-live-p (jsonrpc--process server)) :json-false t)))))))

(run-at-time 50 nil (lambda () (lspilot-test-finish nil "driver timed out (50 s)")))

(condition-case err
    (progn (lspilot-test-run) (lspilot-test-finish t))
  (error (lspilot-test-finish nil (error-message-string err))))

;;; emacs_driver.el ends here
